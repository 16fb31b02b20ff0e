"""Python binding and tools for the xdpex matching engine."""
