-- wrk script for `make control-bench` (xdpex.bench): REST order entry with generated order bodies.
--
--   wrk -tN -cN -dS -s orders.lua URL -- MODE BATCH RATE TOKEN
--
-- MODE single: POST /api/v1/orders, one order a request; MODE batch: POST /api/v1/orders/batch,
-- BATCH orders a request. Orders alternate buy and sell GTC limits at one price on symbols 1-4,
-- so each one trades with the one before it and the books stay shallow however long the run.
-- RATE 0: closed loop (each connection sends its next request when the answer is in). RATE > 0:
-- constant rate, wrk2-style: each connection (one per thread: use -t equal to -c) has a schedule
-- of RATE/threads requests a second, waits with delay() until the next slot, and its latency is
-- measured from the slot, not from the send, so a slow answer also counts against the requests
-- it held up (no coordinated omission). done() prints one line "XDPEX_WRK {json}".
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } xdpex_timespec;
int clock_gettime(int clk, xdpex_timespec *tp);
]]
local ts = ffi.new("xdpex_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

local mode, batch, interval_us, due, slot
rate = 0 -- global: done() reads it from a thread
local slot_t, start_t, held
local reqs = {}
lat = {}      -- constant rate: latency of each answer from its slot (µs)
codes = {}    -- status code -> count
nthreads = 1

local function order(i)
  local side = (i % 2 == 0) and "buy" or "sell"
  return string.format('{"symbol_id":%d,"side":"%s","type":"limit","tif":"gtc","qty":1,"price":900}',
    1 + math.floor(i / 2) % 4, side)
end

function init(args)
  mode = args[1] or "single"
  batch = tonumber(args[2] or "1")
  rate = tonumber(args[3] or "0")
  local token = args[4] or ""
  nthreads = tonumber(args[5] or "1")
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }
  -- 16 request variants, rotating: 8 buy/sell pairs over the four symbols
  for v = 0, 15 do
    local body, path
    if mode == "batch" then
      local parts = {}
      for i = 0, batch - 1 do parts[#parts + 1] = order(v * batch + i) end
      body = '{"orders":[' .. table.concat(parts, ",") .. ']}'
      path = "/api/v1/orders/batch"
    else
      body = order(v)
      path = "/api/v1/orders"
    end
    reqs[v] = wrk.format("POST", path, headers, body)
  end
  if rate > 0 then
    interval_us = 1e6 * nthreads / rate
    -- threads start their schedules spread over one interval
    due = now_us() + interval_us * ((tid or 1) - 1) / nthreads
  end
  slot = 0
end

function request()
  slot = slot + 1
  if rate > 0 then
    -- from the slot when the answer before held this request past it; from now when delay()
    -- waited for the slot (its timer has millisecond steps and is rounded up)
    start_t = (held or start_t == nil) and slot_t or now_us()
  end
  return reqs[slot % 16]
end

function delay()
  if rate <= 0 then return 0 end
  slot_t = due
  due = due + interval_us
  local wait = slot_t - now_us()
  held = wait <= 0
  if held then return 0 end
  return math.ceil(wait / 1000)
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
  if rate > 0 and start_t then
    lat[#lat + 1] = now_us() - start_t
  end
end

local function pct(sorted, p)
  if #sorted == 0 then return 0 end
  local k = math.floor(p / 100 * #sorted) + 1
  if k > #sorted then k = #sorted end
  return sorted[k]
end

function done(summary, latency, requests)
  local all, okc, bad = {}, 0, 0
  rate = threads[1]:get("rate")
  local by = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("codes")) do
      by[code] = (by[code] or 0) + n
      if code >= 200 and code < 300 then okc = okc + n else bad = bad + n end
    end
    if rate > 0 then
      for _, v in ipairs(t:get("lat")) do all[#all + 1] = v end
    end
  end
  local p50, p99, p999, maxl
  if rate > 0 then
    table.sort(all)
    p50, p99, p999, maxl = pct(all, 50), pct(all, 99), pct(all, 99.9), all[#all] or 0
  else
    p50, p99, p999, maxl = latency:percentile(50), latency:percentile(99),
        latency:percentile(99.9), latency.max
  end
  local e = summary.errors
  local parts = {}
  for code, n in pairs(by) do parts[#parts + 1] = string.format('"%d":%d', code, n) end
  io.write(string.format(
    'XDPEX_WRK {"requests":%d,"ok":%d,"bad_status":%d,"duration_us":%d,"p50_us":%.1f,' ..
    '"p99_us":%.1f,"p999_us":%.1f,"max_us":%.1f,"socket_errors":%d,"timeouts":%d,' ..
    '"codes":{%s},"corrected":%s}\n',
    summary.requests, okc, bad, summary.duration, p50, p99, p999, maxl,
    e.connect + e.read + e.write, e.timeout, table.concat(parts, ","),
    rate > 0 and "true" or "false"))
end
