"""The binary contracts of xdpex in Python, shared by the control plane (control/xdpex) and the
traffic tools (traffic/xdpex_traffic): the wire protocol codec (include/xdpex/proto.h), the golden
vector file format, the journal reader (include/xdpex/journal.h) and the market-data feed codec
(include/xdpex/feed.h). It imports neither of them. tests/test_proto_contract.py,
tests/test_journal_contract.py and the feed's golden vectors check every constant, enum value and
field offset here against the C headers.
"""
