-- Wireshark / tshark dissector for the xdpex market-data feed v1 (include/xdpex/feed.h,
-- docs/marketdata.md): MoldUDP64 downstream packets (big-endian session, sequence, count, then
-- message blocks of a big-endian length and one little-endian feed message), MoldUDP64 request
-- packets to the rewind server, all ten message types with feed.h's enum names as value strings,
-- and each message's sequence number (generated). Registered on UDP port 9400 (the feed) and 9401
-- (the rewind server: a datagram to it is a request, one from it an answer); change them in
-- Preferences > Protocols > XDPEXFEED or with -o xdpexfeed.port:N -o xdpexfeed.rewind_port:N.
--
--   tshark -X lua_script:traffic/wireshark/xdpex_feed.lua -r feed.pcap -Y xdpexfeed.order_id==42
--   tshark -X lua_script:traffic/wireshark/xdpex_feed.lua -r feed.pcap -T fields \
--          -e xdpexfeed.msg_seq -e xdpexfeed.type -e xdpexfeed.price
--
-- Fields are xdpexfeed.mold.* (the packet header), xdpexfeed.req.* (a request) and
-- xdpexfeed.<feed.h field name> for the messages. A malformed packet (xf_parse_datagram's checks,
-- in its order) carries expert info with feed.h's exact text, and is dissected as far as it goes.
-- It loads next to xdpex.lua (the order protocol) with no clash.

local MOLD_HDR, BLOCK_HDR, SESSION_LEN = 20, 2, 10
local MOLD_HEARTBEAT, MOLD_END = 0x0000, 0xFFFF
local DEFAULT_PORT, REWIND_PORT = 9400, 9401

local xf = Proto("xdpexfeed", "xdpex market-data feed (MoldUDP64)")

local msg_types = {
	[0x53] = "SYSTEM_EVENT", [0x48] = "SYMBOL_STATE", [0x41] = "ADD_ORDER", [0x45] = "EXECUTED",
	[0x58] = "REDUCED", [0x44] = "DELETED", [0x55] = "REPLACED", [0x50] = "TRADE",
	[0x47] = "SNAPSHOT_BEGIN", [0x5a] = "SNAPSHOT_END",
}
local snapshot_only = { [0x47] = true, [0x5a] = true }
local sides = { [1] = "BUY", [2] = "SELL" }
local events = { [0x4f] = "START_OF_SESSION", [0x43] = "END_OF_SESSION" }
local states = { [0x54] = "TRADING", [0x48] = "HALTED" }
local statuses = { [0] = "OK", [1] = "UNKNOWN_SESSION", [2] = "UNKNOWN_SYMBOL", [3] = "BAD_REQUEST" }

local F = {
	session = ProtoField.string("xdpexfeed.mold.session", "Session"),
	seq = ProtoField.uint64("xdpexfeed.mold.seq", "Sequence of first message", base.DEC),
	count = ProtoField.uint16("xdpexfeed.mold.count", "Message count", base.DEC,
		{ [MOLD_HEARTBEAT] = "HEARTBEAT", [MOLD_END] = "END_OF_SESSION" }),
	req_session = ProtoField.string("xdpexfeed.req.session", "Requested session"),
	req_seq = ProtoField.uint64("xdpexfeed.req.seq", "Requested sequence", base.DEC),
	req_count = ProtoField.uint16("xdpexfeed.req.count", "Requested messages", base.DEC),
	msg = ProtoField.bytes("xdpexfeed.msg", "Message"),
	msg_len = ProtoField.uint16("xdpexfeed.msg_len", "Message length", base.DEC),
	msg_seq = ProtoField.uint64("xdpexfeed.msg_seq", "Message sequence", base.DEC),
	type = ProtoField.uint8("xdpexfeed.type", "Type", base.HEX, msg_types),
	side = ProtoField.uint8("xdpexfeed.side", "Side", base.DEC, sides),
	event = ProtoField.uint8("xdpexfeed.event", "System event", base.HEX, events),
	state = ProtoField.uint8("xdpexfeed.state", "Symbol state", base.HEX, states),
	status = ProtoField.uint8("xdpexfeed.status", "Snapshot status", base.DEC, statuses),
	symbol_id = ProtoField.uint32("xdpexfeed.symbol_id", "Symbol", base.DEC),
	ts = ProtoField.uint64("xdpexfeed.ts", "Gateway timestamp (ns)", base.DEC),
	order_id = ProtoField.uint64("xdpexfeed.order_id", "Order id", base.DEC),
	match_id = ProtoField.uint64("xdpexfeed.match_id", "Match id", base.DEC),
	price = ProtoField.int64("xdpexfeed.price", "Price (ticks)", base.DEC),
	qty = ProtoField.uint32("xdpexfeed.qty", "Quantity", base.DEC),
	leaves = ProtoField.uint32("xdpexfeed.leaves", "Leaves quantity", base.DEC),
	next_seq = ProtoField.uint64("xdpexfeed.next_seq", "Next sequence", base.DEC),
	symbols = ProtoField.uint32("xdpexfeed.symbols", "Symbols", base.DEC),
	orders = ProtoField.uint32("xdpexfeed.orders", "Orders", base.DEC),
}
local field_list = {}
for _, f in pairs(F) do field_list[#field_list + 1] = f end
xf.fields = field_list

local perr_names = { "short", "session", "seq", "empty_trailing", "block_short",
	"block_truncated", "trailing", "msg_type", "msg_length" }
local E = {}
local expert_list = {}
for _, name in ipairs(perr_names) do
	E[name] = ProtoExpert.new("xdpexfeed.perr." .. name, "XF_PERR_" .. string.upper(name),
		expert.group.MALFORMED, expert.severity.ERROR)
	expert_list[#expert_list + 1] = E[name]
end
xf.experts = expert_list

xf.prefs.port = Pref.uint("Feed UDP port", DEFAULT_PORT, "UDP port of the live feed")
xf.prefs.rewind_port = Pref.uint("Rewind UDP port", REWIND_PORT, "UDP port of the rewind server")

-- Message layouts after the 16-byte prefix (type, aux byte, pad, symbol_id, ts): {field, offset,
-- size}, little-endian. The aux byte's field is per type.
local aux_field = { [0x53] = "event", [0x48] = "state", [0x41] = "side", [0x45] = "side",
	[0x58] = "side", [0x44] = "side", [0x55] = "side", [0x50] = "side", [0x47] = "status" }
local sizes = { [0x53] = 16, [0x48] = 16, [0x41] = 40, [0x45] = 48, [0x58] = 32, [0x44] = 32,
	[0x55] = 40, [0x50] = 40, [0x47] = 32, [0x5a] = 24 }
local layouts = {
	[0x41] = { { "order_id", 16, 8 }, { "price", 24, 8 }, { "qty", 32, 4 } },
	[0x45] = { { "order_id", 16, 8 }, { "match_id", 24, 8 }, { "price", 32, 8 }, { "qty", 40, 4 },
		{ "leaves", 44, 4 } },
	[0x58] = { { "order_id", 16, 8 }, { "qty", 24, 4 }, { "leaves", 28, 4 } },
	[0x44] = { { "order_id", 16, 8 }, { "qty", 24, 4 } },
	[0x55] = { { "order_id", 16, 8 }, { "price", 24, 8 }, { "qty", 32, 4 } },
	[0x50] = { { "match_id", 16, 8 }, { "price", 24, 8 }, { "qty", 32, 4 } },
	[0x47] = { { "next_seq", 16, 8 }, { "symbols", 24, 4 }, { "orders", 28, 4 } },
	[0x5a] = { { "next_seq", 16, 8 } },
}

local function type_name(t)
	return msg_types[t] or string.format("0x%02x", t)
end

-- feed.h's xf_parse_datagram(), same checks, same order, same texts. nil when valid, else the
-- expert key, the text and the index of the first bad block (nil for the header).
local function validate(buf)
	local n = buf:len()
	if n < MOLD_HDR then
		return "short", string.format("datagram: %d bytes, shorter than the %d-byte MoldUDP64 " ..
			"header", n, MOLD_HDR)
	end
	for i = 0, SESSION_LEN - 1 do
		local c = buf(i, 1):uint()
		if c < 0x20 or c > 0x7e then
			return "session", string.format("mold.session[%d]: byte 0x%02x is not printable " ..
				"ASCII", i, c)
		end
	end
	local seq, count = buf(10, 8):uint64(), buf(18, 2):uint()
	if seq == UInt64(0) then return "seq", "mold.seq: 0, sequence numbers start at 1" end
	if count == MOLD_HEARTBEAT or count == MOLD_END then
		if n ~= MOLD_HDR then
			return "empty_trailing", string.format("datagram: %d bytes, %s packets are the " ..
				"20-byte header alone", n, count == MOLD_END and "end-of-session" or "heartbeat")
		end
		return nil
	end
	if UInt64.max() - (count - 1) < seq then
		return "seq", string.format("mold.seq: %s, seq + count - 1 overflows with count %d",
			tostring(seq), count)
	end
	local off = MOLD_HDR
	for i = 0, count - 1 do
		local left = n - off
		if left < BLOCK_HDR then
			return "block_short", string.format("block[%d]: length field cut off, %d byte%s left",
				i, left, left == 1 and "" or "s"), i
		end
		local mlen = buf(off, 2):uint()
		if left - BLOCK_HDR < mlen then
			return "block_truncated", string.format("block[%d].length: %d, only %d bytes left", i,
				mlen, left - BLOCK_HDR), i
		end
		if mlen == 0 then
			return "msg_length", string.format("block[%d].length: 0, a message has at least a " ..
				"type", i), i
		end
		local t = buf(off + BLOCK_HDR, 1):uint()
		if msg_types[t] == nil then
			return "msg_type", string.format("msg[%d].type: 0x%02x, unknown message type", i, t), i
		end
		if snapshot_only[t] then
			return "msg_type", string.format("msg[%d].type: 0x%02x (%s), only sent in snapshots",
				i, t, msg_types[t]), i
		end
		if mlen ~= sizes[t] then
			return "msg_length", string.format("block[%d].length: %d, %s is %d bytes", i, mlen,
				msg_types[t], sizes[t]), i
		end
		off = off + BLOCK_HDR + mlen
	end
	if off ~= n then
		return "trailing", string.format("datagram: %d bytes, the blocks end at %d", n, off)
	end
	return nil
end

local function dissect_message(buf, tree, index, seq)
	local t = buf(0, 1):uint()
	local size = buf:len()
	local st = tree:add(F.msg, buf())
	st:set_text(string.format("Message %d: %s", index, type_name(t)))
	st:add(F.type, buf(0, 1))
	if seq ~= nil then st:add(F.msg_seq, seq + (index - 1)):set_generated() end
	if size >= 16 and sizes[t] ~= nil then
		if aux_field[t] then st:add(F[aux_field[t]], buf(1, 1)) end
		st:add_le(F.symbol_id, buf(4, 4))
		st:add_le(F.ts, buf(8, 8))
		for _, spec in ipairs(layouts[t] or {}) do
			if spec[2] + spec[3] <= size then st:add_le(F[spec[1]], buf(spec[2], spec[3])) end
		end
	end
	return type_name(t)
end

local function dissect_request(buf, pinfo, root)
	pinfo.cols.protocol = "XDPEXFEED"
	root:add(F.req_session, buf(0, SESSION_LEN))
	root:add(F.req_seq, buf(10, 8))
	root:add(F.req_count, buf(18, 2))
	pinfo.cols.info = string.format("MoldUDP64 request %s seq=%s count=%d",
		buf(0, SESSION_LEN):string(), tostring(buf(10, 8):uint64()), buf(18, 2):uint())
	return buf:len()
end

local feed_port, rewind_port = DEFAULT_PORT, REWIND_PORT

function xf.dissector(buf, pinfo, tree)
	local len = buf:len()
	local root = tree:add(xf, buf(), "xdpex feed")
	if pinfo.dst_port == rewind_port and pinfo.src_port ~= rewind_port and len == MOLD_HDR then
		return dissect_request(buf, pinfo, root)
	end
	pinfo.cols.protocol = "XDPEXFEED"
	local err, text, bad = validate(buf)
	if err ~= nil then root:add_proto_expert_info(E[err], text) end
	if len < MOLD_HDR then
		pinfo.cols.info = "XDPEXFEED malformed: " .. text
		return len
	end
	local h = root:add(buf(0, MOLD_HDR), "MoldUDP64 header")
	h:add(F.session, buf(0, SESSION_LEN))
	h:add(F.seq, buf(10, 8))
	h:add(F.count, buf(18, 2))
	local seq, count = buf(10, 8):uint64(), buf(18, 2):uint()
	local names = {}
	if count ~= MOLD_HEARTBEAT and count ~= MOLD_END then
		local off = MOLD_HDR
		for i = 1, count do
			if bad ~= nil and i - 1 >= bad then break end
			if len - off < BLOCK_HDR then break end
			local mlen = buf(off, 2):uint()
			if len - off - BLOCK_HDR < mlen or mlen == 0 then break end
			root:add(F.msg_len, buf(off, 2))
			names[#names + 1] = dissect_message(buf(off + BLOCK_HDR, mlen):tvb(), root, i, seq)
			off = off + BLOCK_HDR + mlen
		end
	end
	local kind = count == MOLD_HEARTBEAT and "HEARTBEAT" or
		(count == MOLD_END and "END_OF_SESSION" or table.concat(names, ","))
	local info = string.format("MoldUDP64 %s seq=%s %s", buf(0, SESSION_LEN):string(),
		tostring(seq), kind)
	if err ~= nil then info = info .. " [MALFORMED: " .. text .. "]" end
	pinfo.cols.info = info
	return len
end

local udp_port = DissectorTable.get("udp.port")
udp_port:add(feed_port, xf)
udp_port:add(rewind_port, xf)

function xf.prefs_changed()
	if feed_port ~= xf.prefs.port then
		udp_port:remove(feed_port, xf)
		feed_port = xf.prefs.port
		udp_port:add(feed_port, xf)
	end
	if rewind_port ~= xf.prefs.rewind_port then
		udp_port:remove(rewind_port, xf)
		rewind_port = xf.prefs.rewind_port
		udp_port:add(rewind_port, xf)
	end
end
