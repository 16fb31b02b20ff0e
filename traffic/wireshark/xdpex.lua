-- Wireshark / tshark dissector for the xdpex wire protocol v1 (include/xdpex/proto.h,
-- docs/protocol.md): the 24-byte datagram header and its `count` 64-byte messages, all 16 message
-- types, with proto.h's enum names as value strings. It is registered on UDP port 9000 (change it
-- in Preferences > Protocols > XDPEX, or with -o xdpex.port:N), offered for "Decode As", and
-- takes datagrams on other UDP ports whose header is self-consistent (heuristic "xdpex_udp").
--
--   tshark -X lua_script:traffic/wireshark/xdpex.lua -r capture.pcap -Y xdpex
--   tshark -X lua_script:traffic/wireshark/xdpex.lua -r capture.pcap -T fields \
--          -e xdpex.hdr.seq -e xdpex.type -e xdpex.cl_ord_id
--   wireshark: copy the file to ~/.local/lib/wireshark/plugins/ (as root: it runs too, Debian's
--   init.lua has run_user_scripts_when_superuser = true)
--
-- Header fields are xdpex.hdr.*; message fields are xdpex.<proto.h field name>, one field per name
-- across all messages (so a filter like xdpex.cl_ord_id == 42 finds the order and every answer),
-- except where proto.h uses one name for different things: the reason byte is xdpex.login_reason,
-- xdpex.cancel_reason or xdpex.logout_reason and the Rejected reason is xdpex.reject_reason;
-- RetransmitRequest.count is xdpex.retransmit_count. Malformed datagrams (bad magic, version,
-- count, length, unknown flags or message type) are marked with expert info, never skipped.
--
-- The constants, value strings, message layouts (offset, size), field widths and the parse
-- errors below are proto.h's and parse.h's: tests/test_proto_contract.py reads them from this
-- file and compares them with what gcc makes of the headers.

local HDR_SIZE, MSG_SIZE, MAGIC, VERSION, MAX_MSGS = 24, 64, 0x4558, 1, 22
local F_RETRANSMIT, F_HEARTBEAT, F_FROM_GW, F_KNOWN = 0x01, 0x02, 0x04, 0x07
local DEFAULT_PORT = 9000
local T_HEARTBEAT = 0x06

local xdpex = Proto("xdpex", "xdpex order gateway protocol")

-- Value strings (proto.h enums) ----------------------------------------------------------------
local msg_types = {
	[0x01] = "LOGIN", [0x02] = "NEW_ORDER", [0x03] = "CANCEL", [0x04] = "REPLACE",
	[0x05] = "MASS_CANCEL", [0x06] = "HEARTBEAT", [0x07] = "RETRANSMIT_REQ", [0x08] = "LOGOUT",
	[0x81] = "LOGIN_ACCEPTED", [0x82] = "LOGIN_REJECTED", [0x83] = "ACCEPTED",
	[0x84] = "REJECTED", [0x85] = "FILL", [0x86] = "CANCELLED", [0x87] = "REPLACED",
	[0x88] = "SEQUENCE_GAP",
}
local sides = { [0] = "BOTH", [1] = "BUY", [2] = "SELL" }
local ord_types = { [1] = "LIMIT", [2] = "MARKET", [3] = "POST_ONLY" }
local tifs = { [1] = "DAY", [2] = "GTC", [3] = "IOC", [4] = "FOK" }
local liquidity = { [1] = "ADDED", [2] = "REMOVED" }
local reject_reasons = {
	[0] = "NONE", [1] = "UNKNOWN_SYMBOL", [2] = "OFF_TICK", [3] = "OFF_LOT",
	[4] = "OUTSIDE_BAND", [5] = "BAD_QUANTITY", [6] = "BAD_PRICE", [7] = "UNKNOWN_ORDER",
	[8] = "DUPLICATE_ID", [9] = "POST_ONLY_CROSS", [10] = "FOK_UNFILLABLE", [11] = "CAPACITY",
	[12] = "HALTED", [13] = "BAD_SIDE", [14] = "BAD_ORDER_TYPE", [15] = "BAD_TIF",
	[16] = "NOT_LOGGED_IN", [17] = "UNKNOWN_MESSAGE", [18] = "RATE_LIMITED", [19] = "NO_CHANGE",
	[20] = "REPLACE_QTY",
}
local login_reasons = {
	[1] = "UNKNOWN_SESSION", [2] = "BAD_PROOF", [3] = "STALE", [4] = "REPLAYED",
	[5] = "BOUND_ELSEWHERE", [6] = "DISABLED", [7] = "BAD_SEQUENCE",
}
local cancel_reasons = {
	[1] = "USER", [2] = "IOC", [3] = "MASS", [4] = "SELF_TRADE", [5] = "DISCONNECT",
	[6] = "NO_LIQUIDITY", [7] = "EXPIRED", [8] = "HALT",
}
local logout_reasons = { [1] = "USER", [2] = "TIMEOUT", [3] = "ADMIN", [4] = "SWITCHOVER" }

-- Fields ---------------------------------------------------------------------------------------
local F = {
	magic = ProtoField.uint16("xdpex.hdr.magic", "Magic", base.HEX),
	version = ProtoField.uint8("xdpex.hdr.version", "Version", base.DEC),
	flags = ProtoField.uint8("xdpex.hdr.flags", "Flags", base.HEX),
	f_retransmit = ProtoField.bool("xdpex.hdr.flags.retransmit", "Retransmission", 8, nil, 0x01),
	f_heartbeat = ProtoField.bool("xdpex.hdr.flags.heartbeat", "Heartbeat", 8, nil, 0x02),
	f_from_gw = ProtoField.bool("xdpex.hdr.flags.from_gw", "From gateway", 8, nil, 0x04),
	hdr_session = ProtoField.uint32("xdpex.hdr.session_id", "Session", base.DEC),
	hdr_seq = ProtoField.uint64("xdpex.hdr.seq", "Sequence of first message", base.DEC),
	hdr_count = ProtoField.uint16("xdpex.hdr.count", "Message count", base.DEC),
	hdr_length = ProtoField.uint16("xdpex.hdr.length", "Length", base.DEC),
	reserved = ProtoField.uint32("xdpex.hdr.reserved", "Reserved", base.HEX),
	msg = ProtoField.bytes("xdpex.msg", "Message"),
	msg_seq = ProtoField.uint64("xdpex.msg_seq", "Message sequence", base.DEC),
	type = ProtoField.uint8("xdpex.type", "Type", base.HEX, msg_types),
	side = ProtoField.uint8("xdpex.side", "Side", base.DEC, sides),
	ord_type = ProtoField.uint8("xdpex.ord_type", "Order type", base.DEC, ord_types),
	tif = ProtoField.uint8("xdpex.tif", "Time in force", base.DEC, tifs),
	liquidity = ProtoField.uint8("xdpex.liquidity", "Liquidity", base.DEC, liquidity),
	ref_type = ProtoField.uint8("xdpex.ref_type", "Refused message type", base.HEX, msg_types),
	reject_reason = ProtoField.uint16("xdpex.reject_reason", "Reject reason", base.DEC,
		reject_reasons),
	login_reason = ProtoField.uint8("xdpex.login_reason", "Login reject reason", base.DEC,
		login_reasons),
	cancel_reason = ProtoField.uint8("xdpex.cancel_reason", "Cancel reason", base.DEC,
		cancel_reasons),
	logout_reason = ProtoField.uint8("xdpex.logout_reason", "Logout reason", base.DEC,
		logout_reasons),
	session_id = ProtoField.uint32("xdpex.session_id", "Session", base.DEC),
	symbol_id = ProtoField.uint32("xdpex.symbol_id", "Symbol", base.DEC),
	cl_ord_id = ProtoField.uint64("xdpex.cl_ord_id", "Client order id", base.DEC),
	orig_cl_ord_id = ProtoField.uint64("xdpex.orig_cl_ord_id", "Original client order id",
		base.DEC),
	new_cl_ord_id = ProtoField.uint64("xdpex.new_cl_ord_id", "New client order id", base.DEC),
	order_id = ProtoField.uint64("xdpex.order_id", "Order id", base.DEC),
	exec_id = ProtoField.uint64("xdpex.exec_id", "Execution id", base.DEC),
	price = ProtoField.int64("xdpex.price", "Price (ticks)", base.DEC),
	qty = ProtoField.uint32("xdpex.qty", "Quantity", base.DEC),
	leaves = ProtoField.uint32("xdpex.leaves", "Leaves quantity", base.DEC),
	next_seq = ProtoField.uint64("xdpex.next_seq", "Next sequence", base.DEC),
	nonce = ProtoField.uint64("xdpex.nonce", "Nonce", base.HEX),
	hmac = ProtoField.bytes("xdpex.hmac", "HMAC-SHA256 proof"),
	from_seq = ProtoField.uint64("xdpex.from_seq", "From sequence", base.DEC),
	retransmit_count = ProtoField.uint32("xdpex.retransmit_count", "Messages wanted", base.DEC),
	next_in_seq = ProtoField.uint64("xdpex.next_in_seq", "Next inbound sequence", base.DEC),
	next_out_seq = ProtoField.uint64("xdpex.next_out_seq", "Next outbound sequence", base.DEC),
	heartbeat_ms = ProtoField.uint32("xdpex.heartbeat_ms", "Heartbeat interval (ms)", base.DEC),
	epoch = ProtoField.uint64("xdpex.epoch", "Leadership epoch", base.DEC),
	ref_seq = ProtoField.uint64("xdpex.ref_seq", "Refused message sequence", base.DEC),
	expected = ProtoField.uint64("xdpex.expected", "Expected sequence", base.DEC),
	received = ProtoField.uint64("xdpex.received", "Received sequence", base.DEC),
	client_ts = ProtoField.uint64("xdpex.client_ts", "Client timestamp (ns)", base.DEC),
	echo_ts = ProtoField.uint64("xdpex.echo_ts", "Echoed client timestamp (ns)", base.DEC),
	recv_ts = ProtoField.uint64("xdpex.recv_ts", "Gateway receive timestamp (ns)", base.DEC),
}
local field_list = {}
for _, f in pairs(F) do field_list[#field_list + 1] = f end
xdpex.fields = field_list

-- One expert item per parse.h error (enum xe_parse_error), with parse.h's exact text, so tshark
-- describes a malformed datagram in the same words as xdpexd's log and the Python codec.
local perr_names = { "short", "magic", "version", "flags", "count", "length", "truncated",
	"trailing", "session", "direction", "msg_type", "msg_direction", "msg_kind", "flag_kind",
	"seq_wrap" }
local E = {}
local expert_list = {}
for _, name in ipairs(perr_names) do
	E[name] = ProtoExpert.new("xdpex.perr." .. name, "XE_PERR_" .. string.upper(name),
		expert.group.MALFORMED, expert.severity.ERROR)
	expert_list[#expert_list + 1] = E[name]
end
xdpex.experts = expert_list

xdpex.prefs.port = Pref.uint("UDP port", DEFAULT_PORT, "UDP port of the gateway")

-- Message layouts: {field key, offset, size}; sizes 1/2/4/8 are little-endian integers, 32 the HMAC.
local layouts = {
	[0x01] = { { "session_id", 4, 4 }, { "next_seq", 8, 8 }, { "nonce", 16, 8 },
		{ "hmac", 24, 32 }, { "client_ts", 56, 8 } },
	[0x02] = { { "side", 1, 1 }, { "ord_type", 2, 1 }, { "tif", 3, 1 }, { "symbol_id", 4, 4 },
		{ "cl_ord_id", 8, 8 }, { "price", 16, 8 }, { "qty", 24, 4 }, { "client_ts", 56, 8 } },
	[0x03] = { { "symbol_id", 4, 4 }, { "orig_cl_ord_id", 8, 8 }, { "client_ts", 56, 8 } },
	[0x04] = { { "symbol_id", 4, 4 }, { "orig_cl_ord_id", 8, 8 }, { "new_cl_ord_id", 16, 8 },
		{ "price", 24, 8 }, { "qty", 32, 4 }, { "client_ts", 56, 8 } },
	[0x05] = { { "side", 1, 1 }, { "symbol_id", 4, 4 }, { "client_ts", 56, 8 } },
	[0x06] = { { "next_seq", 8, 8 }, { "echo_ts", 48, 8 }, { "client_ts", 56, 8 } },
	[0x07] = { { "from_seq", 8, 8 }, { "retransmit_count", 16, 4 }, { "client_ts", 56, 8 } },
	[0x08] = { { "logout_reason", 1, 1 }, { "echo_ts", 48, 8 }, { "client_ts", 56, 8 } },
	[0x81] = { { "session_id", 4, 4 }, { "next_in_seq", 8, 8 }, { "next_out_seq", 16, 8 },
		{ "heartbeat_ms", 24, 4 }, { "epoch", 32, 8 }, { "echo_ts", 48, 8 },
		{ "recv_ts", 56, 8 } },
	[0x82] = { { "login_reason", 1, 1 }, { "session_id", 4, 4 }, { "echo_ts", 48, 8 },
		{ "recv_ts", 56, 8 } },
	[0x83] = { { "side", 1, 1 }, { "ord_type", 2, 1 }, { "tif", 3, 1 }, { "symbol_id", 4, 4 },
		{ "cl_ord_id", 8, 8 }, { "order_id", 16, 8 }, { "price", 24, 8 }, { "qty", 32, 4 },
		{ "echo_ts", 48, 8 }, { "recv_ts", 56, 8 } },
	[0x84] = { { "ref_type", 1, 1 }, { "reject_reason", 2, 2 }, { "symbol_id", 4, 4 },
		{ "cl_ord_id", 8, 8 }, { "ref_seq", 16, 8 }, { "echo_ts", 48, 8 }, { "recv_ts", 56, 8 } },
	[0x85] = { { "side", 1, 1 }, { "liquidity", 2, 1 }, { "symbol_id", 4, 4 },
		{ "cl_ord_id", 8, 8 }, { "exec_id", 16, 8 }, { "price", 24, 8 }, { "qty", 32, 4 },
		{ "leaves", 36, 4 }, { "order_id", 40, 8 }, { "echo_ts", 48, 8 }, { "recv_ts", 56, 8 } },
	[0x86] = { { "side", 1, 1 }, { "cancel_reason", 2, 1 }, { "symbol_id", 4, 4 },
		{ "cl_ord_id", 8, 8 }, { "order_id", 16, 8 }, { "price", 24, 8 }, { "qty", 32, 4 },
		{ "echo_ts", 48, 8 }, { "recv_ts", 56, 8 } },
	[0x87] = { { "side", 1, 1 }, { "symbol_id", 4, 4 }, { "cl_ord_id", 8, 8 },
		{ "order_id", 16, 8 }, { "price", 24, 8 }, { "qty", 32, 4 }, { "leaves", 36, 4 },
		{ "orig_cl_ord_id", 40, 8 }, { "echo_ts", 48, 8 }, { "recv_ts", 56, 8 } },
	[0x88] = { { "expected", 8, 8 }, { "received", 16, 8 }, { "echo_ts", 48, 8 },
		{ "recv_ts", 56, 8 } },
}
-- Session messages are not sequenced (they travel in seq == 0 datagrams).
local session_types = { [0x01] = true, [0x06] = true, [0x07] = true, [0x08] = true,
	[0x81] = true, [0x82] = true, [0x88] = true }

local both_ways = { [0x06] = true, [0x08] = true }

local function type_name(t)
	return msg_types[t] or string.format("0x%02x", t)
end

local function dirs(to_gw)
	return to_gw and "client -> gateway" or "gateway -> client"
end

-- parse.h's xe_parse_datagram() checks, in its order. Returns nil when the datagram is valid,
-- else the expert key and parse.h's text for the first failure. `dir` is "to_gw", "from_gw" or
-- nil (decided by the FROM_GW flag, like XE_DIR_AUTO).
local function validate(buf, dir)
	local n = buf:len()
	if n < HDR_SIZE then
		return "short", string.format("datagram: %d bytes, shorter than the %d-byte header", n,
			HDR_SIZE)
	end
	local magic, version, flags = buf(0, 2):le_uint(), buf(2, 1):uint(), buf(3, 1):uint()
	local session, seq = buf(4, 4):le_uint(), buf(8, 8):le_uint64()
	local count, length = buf(16, 2):le_uint(), buf(18, 2):le_uint()
	if magic ~= MAGIC then
		return "magic", string.format("hdr.magic: 0x%04x, expected 0x%04x", magic, MAGIC)
	end
	if version ~= VERSION then
		return "version", string.format("hdr.version: %d, expected %d", version, VERSION)
	end
	if bit.band(flags, bit.bnot(F_KNOWN)) ~= 0 then
		return "flags", string.format("hdr.flags: 0x%02x has unknown bits 0x%02x", flags,
			bit.band(flags, bit.bnot(F_KNOWN)))
	end
	if count < 1 or count > MAX_MSGS then
		return "count", string.format("hdr.count: %d, expected 1..%d", count, MAX_MSGS)
	end
	if length ~= HDR_SIZE + count * MSG_SIZE then
		return "length", string.format("hdr.length: %d, expected %d for count %d", length,
			HDR_SIZE + count * MSG_SIZE, count)
	end
	if n < length then
		return "truncated", string.format("msg[%d]: truncated, datagram has %d of %d bytes",
			math.floor((n - HDR_SIZE) / MSG_SIZE), n, length)
	end
	if n > length then
		return "trailing", string.format("datagram: %d bytes, hdr.length says %d", n, length)
	end
	if session == 0 then return "session", "hdr.session_id: 0, expected nonzero" end
	local from_gw_flag = bit.band(flags, F_FROM_GW) ~= 0
	local to_gw
	if dir == nil then to_gw = not from_gw_flag else to_gw = dir == "to_gw" end
	local function dir_err(what)
		return "direction", string.format("hdr.flags: 0x%02x, %s on a %s datagram", flags, what,
			dirs(to_gw))
	end
	if to_gw and from_gw_flag then return dir_err("FROM_GW set") end
	if not to_gw and not from_gw_flag then return dir_err("FROM_GW missing") end
	local retransmit = bit.band(flags, F_RETRANSMIT) ~= 0
	if to_gw and retransmit then return dir_err("RETRANSMIT set") end
	local seq0 = seq == UInt64(0)
	if seq0 and retransmit then
		return "flag_kind", string.format("hdr.flags: 0x%02x, RETRANSMIT set on a session " ..
			"datagram (seq 0)", flags)
	end
	if not seq0 and UInt64.max() - (count - 1) < seq then
		return "seq_wrap", string.format("hdr.seq: %s, seq + count - 1 overflows with count %d",
			tostring(seq), count)
	end
	for i = 0, count - 1 do
		local t = buf(HDR_SIZE + i * MSG_SIZE, 1):uint()
		if layouts[t] == nil then
			return "msg_type", string.format("msg[%d].type: 0x%02x, unknown message type", i, t)
		end
		if not both_ways[t] and (t < 0x80) ~= to_gw then
			return "msg_direction", string.format("msg[%d].type: 0x%02x (%s), not sent %s", i, t,
				type_name(t), dirs(to_gw))
		end
		if seq0 and not session_types[t] then
			return "msg_kind", string.format("msg[%d].type: 0x%02x (%s), application message " ..
				"in a session datagram (seq 0)", i, t, type_name(t))
		end
		if not seq0 and session_types[t] then
			return "msg_kind", string.format("msg[%d].type: 0x%02x (%s), session message in an " ..
				"application datagram (seq %s)", i, t, type_name(t), tostring(seq))
		end
		if bit.band(flags, F_HEARTBEAT) ~= 0 and t ~= T_HEARTBEAT then
			return "flag_kind", string.format("hdr.flags: 0x%02x, HEARTBEAT set but msg[%d] is %s",
				flags, i, type_name(t))
		end
	end
	return nil
end

local function dissect_message(buf, tree, index, seq)
	local t = buf(0, 1):uint()
	local st = tree:add(F.msg, buf(0, MSG_SIZE))
	st:set_text(string.format("Message %d: %s", index, msg_types[t] or type_name(t)))
	st:add(F.type, buf(0, 1))
	if seq ~= UInt64(0) and not session_types[t] then
		st:add(F.msg_seq, seq + (index - 1)):set_generated()
	end
	for _, spec in ipairs(layouts[t] or {}) do
		st:add_le(F[spec[1]], buf(spec[2], spec[3]))
	end
	return msg_types[t] or type_name(t)
end

local registered_port = DEFAULT_PORT

function xdpex.dissector(buf, pinfo, tree)
	local len = buf:len()
	pinfo.cols.protocol = "XDPEX"
	local root = tree:add(xdpex, buf(), "xdpex")
	local dir = nil
	if pinfo.src_port == registered_port and pinfo.dst_port ~= registered_port then
		dir = "from_gw"
	elseif pinfo.dst_port == registered_port and pinfo.src_port ~= registered_port then
		dir = "to_gw"
	end
	local err, text = validate(buf, dir)
	if err ~= nil then root:add_proto_expert_info(E[err], text) end
	if len < HDR_SIZE then
		pinfo.cols.info = "XDPEX malformed: " .. text
		return len
	end

	local h = root:add(buf(0, HDR_SIZE), "Header")
	h:add_le(F.magic, buf(0, 2))
	h:add(F.version, buf(2, 1))
	local flags = buf(3, 1):uint()
	local ft = h:add(F.flags, buf(3, 1))
	ft:add(F.f_retransmit, buf(3, 1))
	ft:add(F.f_heartbeat, buf(3, 1))
	ft:add(F.f_from_gw, buf(3, 1))
	local session = buf(4, 4):le_uint()
	h:add_le(F.hdr_session, buf(4, 4))
	local seq = buf(8, 8):le_uint64()
	h:add_le(F.hdr_seq, buf(8, 8))
	local count = buf(16, 2):le_uint()
	h:add_le(F.hdr_count, buf(16, 2))
	h:add_le(F.hdr_length, buf(18, 2))
	h:add_le(F.reserved, buf(20, 4))

	local names = {}
	local n = math.min(count, math.floor((len - HDR_SIZE) / MSG_SIZE))
	for i = 1, n do
		local off = HDR_SIZE + (i - 1) * MSG_SIZE
		names[#names + 1] = dissect_message(buf(off, MSG_SIZE):tvb(), root, i, seq)
	end
	local info = string.format("XDPEX %s session=%d seq=%s %s",
		bit.band(flags, F_FROM_GW) ~= 0 and "gw>cl" or "cl>gw", session, tostring(seq),
		table.concat(names, ","))
	if bit.band(flags, F_RETRANSMIT) ~= 0 then info = info .. " [RETRANSMIT]" end
	if err ~= nil then info = info .. " [MALFORMED: " .. text .. "]" end
	pinfo.cols.info = info
	root:append_text(string.format(", session %d, seq %s, %d message(s)", session,
		tostring(seq), count))
	return len
end

local udp_port = DissectorTable.get("udp.port")
udp_port:add(registered_port, xdpex)

-- On any other UDP port: take a datagram only when its header is self-consistent (magic,
-- version, count in range, length = the datagram's length = 24 + 64 x count).
local function heuristic(buf, pinfo, tree)
	local n = buf:len()
	if n < HDR_SIZE or buf(0, 2):le_uint() ~= MAGIC or buf(2, 1):uint() ~= VERSION then
		return false
	end
	local count, length = buf(16, 2):le_uint(), buf(18, 2):le_uint()
	if count < 1 or count > MAX_MSGS or length ~= n or length ~= HDR_SIZE + count * MSG_SIZE then
		return false
	end
	xdpex.dissector(buf, pinfo, tree)
	return true
end
xdpex:register_heuristic("udp", heuristic)

function xdpex.prefs_changed()
	if registered_port ~= xdpex.prefs.port then
		udp_port:remove(registered_port, xdpex)
		registered_port = xdpex.prefs.port
		udp_port:add(registered_port, xdpex)
	end
end
