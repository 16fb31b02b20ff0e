"""xdpex_proto: the Python side of xdpex's binary contracts (include/xdpex/*.h), each module
checked against its C header by golden vectors: feed (the market-data feed, feed.h)."""
