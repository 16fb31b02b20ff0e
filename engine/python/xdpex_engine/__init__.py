"""Python binding and tools for the xdpex matching engine.

`xdpex_engine.native` loads build/engine/libxdpex_engine.so through cffi; `xdpex_engine.cli` is the
`xdpex engine` command (replay, bench, lobster).
"""
