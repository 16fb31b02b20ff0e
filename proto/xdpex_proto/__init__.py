"""The binary contracts of xdpex in Python, shared by the control plane (control/xdpex) and the
traffic tools (traffic/xdpex_traffic): the wire protocol codec (include/xdpex/proto.h), the golden
vector file format and the journal reader (include/xdpex/journal.h). It imports neither of them.
tests/test_proto_contract.py and tests/test_journal_contract.py check every constant, enum value
and field offset here against the C headers.
"""
