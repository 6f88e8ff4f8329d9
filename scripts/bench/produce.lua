-- wrk script for scripts/bench.sh: POST /topics/{topic} with a v2 produce body (or an API v3
-- stream of records to /v3/clusters/{id}/topics/{topic}/records), count every response that
-- is not a clean 200, and print one machine-readable result line.
--
-- Environment (set by bench.sh):
--   BENCH_FORMAT     json | binary | avro | v3           (default json; avro sends the
--                    value with "value_schema_id": BENCH_SCHEMA_ID; v3 sends BENCH_BATCH
--                    concatenated v3 records {"value":{"type":"JSON","data":...}} as one
--                    stream, each answered by its own line)
--   BENCH_BATCH      records per request                 (default 1)
--   BENCH_VALUE      the record value, compact JSON      (json format)
--   BENCH_VALUE_B64  the same bytes in base64            (binary format)
--   BENCH_SCHEMA_ID  the registered Avro schema of BENCH_VALUE (avro format)
--   BENCH_LABEL      copied into the result line
--   BENCH_RATE       optional: target requests/s over all threads. Paces requests with
--                    wrk's delay() hook on a per-thread schedule (wrk2-style constant rate,
--                    ms timer resolution; latency is measured from the actual send, i.e. not
--                    corrected for coordinated omission as wrk2 would)
--   BENCH_THREADS    wrk -t, needed with BENCH_RATE
--   BENCH_UNIQUE_HEADER  optional: a header sent with a value unique to each request
--                    (BENCH_NONCE-thread-sequence, e.g. Idempotency-Key). Requests are then
--                    formatted one by one (wrk's request() hook) instead of once; the run to
--                    compare with sends another header (X-Bench-Seq) the same way, so that
--                    both pay the same load-generator cost
--   BENCH_NONCE      with BENCH_UNIQUE_HEADER: makes the values unique to this wrk run
--   BENCH_HEADER     optional: one more header sent with every request, "Name: value"
--                    (credentials: X-API-Key: ...)
--
-- The result line is `BENCH_RESULT {json}`; bench.sh fails the run when non200,
-- record_errors or any socket error is not zero.

local format = os.getenv("BENCH_FORMAT") or "json"
local batch = tonumber(os.getenv("BENCH_BATCH") or "1")
local label = os.getenv("BENCH_LABEL") or "produce"
local value = os.getenv("BENCH_VALUE")
    or '{"id":1234567,"name":"benchmark-record-abcdefghijklmnopqrstuvwxyz-0123456789-ABCDEF","amount":12.34}'
local value_b64 = os.getenv("BENCH_VALUE_B64")
local rate = tonumber(os.getenv("BENCH_RATE") or "")
local threads_n = tonumber(os.getenv("BENCH_THREADS") or "1")

local record
local schema_ref = ""
if format == "binary" then
    assert(value_b64, "BENCH_VALUE_B64 is required with BENCH_FORMAT=binary")
    record = '{"value":"' .. value_b64 .. '"}'
    wrk.headers["Content-Type"] = "application/vnd.kafka.binary.v2+json"
elseif format == "avro" then
    local schema_id = os.getenv("BENCH_SCHEMA_ID")
    assert(schema_id, "BENCH_SCHEMA_ID is required with BENCH_FORMAT=avro")
    record = '{"value":' .. value .. '}'
    schema_ref = '"value_schema_id":' .. schema_id .. ','
    wrk.headers["Content-Type"] = "application/vnd.kafka.avro.v2+json"
elseif format == "v3" then
    record = '{"value":{"type":"JSON","data":' .. value .. '}}'
    wrk.headers["Content-Type"] = "application/json"
else
    record = '{"value":' .. value .. '}'
    wrk.headers["Content-Type"] = "application/vnd.kafka.json.v2+json"
end
local extra_header = os.getenv("BENCH_HEADER")
if extra_header and extra_header ~= "" then
    local name, v = string.match(extra_header, "^([^:]+):%s*(.*)$")
    assert(name, "BENCH_HEADER must be 'Name: value'")
    wrk.headers[name] = v
end
local records = {}
for i = 1, batch do
    records[i] = record
end
-- A static request: wrk formats it once, so the load generator spends as little CPU as it can
-- (it shares the machine with the proxy).
wrk.method = "POST"
if format == "v3" then
    -- Records one after the other, a newline between them, as a streaming client writes.
    wrk.body = table.concat(records, "\n")
    wrk.headers["Accept"] = "application/json"
else
    wrk.body = '{' .. schema_ref .. '"records":[' .. table.concat(records, ",") .. ']}'
    wrk.headers["Accept"] = "application/vnd.kafka.v2+json"
end

-- Per-thread counters (each wrk thread has its own Lua state; done() collects them).
non200 = 0
record_errors = 0
first_failure = ""
-- Answers by status, for the load check (which expects 429s and 503s).
s200, s429, s503, sother = 0, 0, 0, 0

-- How many times `needle` occurs in `text`: a plain search (string.find without patterns)
-- rather than string.gsub, whose pattern matcher took two thirds of wrk's CPU on a stream's
-- 170 KB of result lines, CPU the proxy under test then did not get. The search stops at
-- each occurrence of the needle's first byte: better a rare one.
local function occurrences(text, needle)
    local n, at = 0, 1
    while true do
        local found = string.find(text, needle, at, true)
        if not found then
            return n
        end
        n = n + 1
        at = found + #needle
    end
end

function response(status, headers, body)
    if status == 200 then
        s200 = s200 + 1
    elseif status == 429 then
        s429 = s429 + 1
    elseif status == 503 then
        s503 = s503 + 1
    else
        sother = sother + 1
    end
    if status ~= 200 then
        non200 = non200 + 1
        if first_failure == "" then
            first_failure = "HTTP " .. status .. ": " .. string.sub(body or "", 1, 300)
        end
    elseif body and format == "v3" then
        -- A stream answers one line per record (each ends with \r\n): each must be a 200.
        -- Lines are found by the newline before them, a byte found once per line, where
        -- '"' would stop the search at every field.
        local ok = occurrences(body, '\n{"error_code":200,')
        if string.sub(body, 1, 18) == '{"error_code":200,' then
            ok = ok + 1
        end
        if ok ~= batch then
            record_errors = record_errors + (batch - ok)
            if first_failure == "" then
                first_failure = "HTTP 200 with " .. (batch - ok) .. " failed lines: "
                    .. string.sub(body, 1, 300)
            end
        end
    elseif body then
        -- A 200 may still carry per-record failures ("error_code":50003...).
        local n = occurrences(body, '"error_code":') - occurrences(body, '"error_code":null')
        if n > 0 then
            record_errors = record_errors + n
            if first_failure == "" then
                first_failure = "HTTP 200 with record errors: " .. string.sub(body, 1, 300)
            end
        end
    end
end

if rate and rate > 0 then
    local ffi = require("ffi")
    ffi.cdef([[
        typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
        int clock_gettime(int clk_id, bench_timespec *tp);
    ]])
    local ts = ffi.new("bench_timespec")
    local function now_ms()
        ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
        return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
    end
    local interval = 1000 * threads_n / rate
    local next_ms = nil
    -- Called before each request: the wait until this thread's next slot. A schedule that
    -- fell behind (all connections busy) catches up by at most 10 ms worth of slots.
    function delay()
        local now = now_ms()
        if next_ms == nil or next_ms < now - 10 then
            next_ms = now
        end
        local wait = next_ms - now
        next_ms = next_ms + interval
        if wait < 1 then
            return 0
        end
        return math.floor(wait)
    end
end

local threads = {}

function setup(thread)
    table.insert(threads, thread)
    thread:set("thread_id", #threads)
end

local unique_header = os.getenv("BENCH_UNIQUE_HEADER")
if unique_header and unique_header ~= "" then
    local nonce = os.getenv("BENCH_NONCE") or tostring(os.time())
    local sequence = 0
    local prefix
    function request()
        if prefix == nil then
            prefix = nonce .. "-" .. tostring(thread_id or 0) .. "-"
        end
        sequence = sequence + 1
        local headers = {}
        for name, v in pairs(wrk.headers) do
            headers[name] = v
        end
        headers[unique_header] = prefix .. sequence
        return wrk.format(nil, nil, headers, nil)
    end
end

local function q(s)
    s = string.gsub(s, '\\', '\\\\')
    s = string.gsub(s, '"', '\\"')
    s = string.gsub(s, '[%c]', ' ')
    return '"' .. s .. '"'
end

function done(summary, latency, requests)
    local bad, rec_err, first = 0, 0, ""
    local n200, n429, n503, nother = 0, 0, 0, 0
    for _, t in ipairs(threads) do
        n200 = n200 + (t:get("s200") or 0)
        n429 = n429 + (t:get("s429") or 0)
        n503 = n503 + (t:get("s503") or 0)
        nother = nother + (t:get("sother") or 0)
        bad = bad + (t:get("non200") or 0)
        rec_err = rec_err + (t:get("record_errors") or 0)
        local f = t:get("first_failure") or ""
        if first == "" then
            first = f
        end
    end
    local secs = summary.duration / 1e6
    local e = summary.errors
    local fields = {
        '"label":' .. q(label),
        '"format":' .. q(format),
        '"batch":' .. batch,
        '"body_bytes":' .. #wrk.body,
        '"duration_s":' .. secs,
        '"requests":' .. summary.requests,
        '"requests_per_s":' .. summary.requests / secs,
        '"records_per_s":' .. summary.requests * batch / secs,
        '"p50_ms":' .. latency:percentile(50) / 1000,
        '"p90_ms":' .. latency:percentile(90) / 1000,
        '"p99_ms":' .. latency:percentile(99) / 1000,
        '"max_ms":' .. latency.max / 1000,
        '"non200":' .. bad,
        '"record_errors":' .. rec_err,
        '"errors_connect":' .. e.connect,
        '"errors_read":' .. e.read,
        '"errors_write":' .. e.write,
        '"errors_status":' .. e.status,
        '"errors_timeout":' .. e.timeout,
        '"target_rate":' .. (rate or 0),
        '"status_200":' .. n200,
        '"status_429":' .. n429,
        '"status_503":' .. n503,
        '"status_other":' .. nother,
        '"first_failure":' .. q(first),
    }
    io.write("BENCH_RESULT {" .. table.concat(fields, ",") .. "}\n")
end
