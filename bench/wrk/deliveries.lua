-- Closed-loop load for R0 and R2: cycles through pre-signed Stripe deliveries.
--
--   wrk -t T -c C -d D -s bench/wrk/deliveries.lua URL -- DELIVERIES_FILE T
--
-- DELIVERIES_FILE holds one delivery per line: "<Stripe-Signature>\t<JSON body>" (written by
-- bench/deliveries.py; orjson never emits a raw tab or newline). Thread i of T keeps lines
-- i, i+T, i+2T, ... so no two threads send the same delivery, and pre-formats them in init():
-- request() is then a table lookup, which keeps wrk's own CPU cost per request tiny.
-- done() prints one "BENCH {json}" line that bench/receiver.py parses.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  thread:set("wraps", 0)
  table.insert(threads, thread)
  next_id = next_id + 1
end

local prepared = {}
local position = 0

function init(args)
  local path, thread_count = args[1], tonumber(args[2])
  local index = 0
  for line in io.lines(path) do
    if index % thread_count == id then
      local signature, body = line:match("^([^\t]+)\t(.+)$")
      prepared[#prepared + 1] = wrk.format("POST", nil, {
        ["Content-Type"] = "application/json; charset=utf-8",
        ["Stripe-Signature"] = signature,
        ["User-Agent"] = "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
      }, body)
    end
    index = index + 1
  end
  if #prepared == 0 then
    error("no deliveries for thread " .. id .. " in " .. path)
  end
end

function request()
  position = position + 1
  if position > #prepared then
    -- the pool is exhausted: start over (the receiver then sees repeated deliveries, as a PSP
    -- retry would look); counted so the report can say so
    position = 1
    wraps = wraps + 1
  end
  return prepared[position]
end

function done(summary, latency, _requests)
  local wrapped = 0
  for _, thread in ipairs(threads) do
    wrapped = wrapped + thread:get("wraps")
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"wraps":%d}\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout, latency:percentile(50.0), latency:percentile(99.0), wrapped))
end
