-- wrk script for bench/run.sh: logs every request attempt with a timestamp.
--
-- Run with as many connections as threads (-t N -c N), so each thread has one
-- connection and its requests are strictly sequential: request() and
-- response() then alternate, and a request() that follows a request() with
-- no response() in between is a failed attempt (wrk reconnects after a read
-- or write error, a reset, or a close without an answer, and asks for a new
-- request). Each thread writes lines "START_US LATENCY_US STATUS" to
-- $BENCH_WRK_LOG/wrk.<thread>.log; a failed attempt is "START_US -1 0".
-- Times are CLOCK_MONOTONIC microseconds (LuaJIT ffi), the clock the driver
-- uses for its own events, so requests can be matched to reloads.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } hwbench_timespec;
int clock_gettime(int clk_id, hwbench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("hwbench_timespec")

local function now_us()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
    return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

-- main state ------------------------------------------------------------
local threads = {}

function setup(thread)
    table.insert(threads, thread)
    thread:set("tid", #threads)
end

-- thread states (globals, so that done() can read them with thread:get) --
attempts, ok, non2xx, failed = 0, 0, 0, 0
local log, req, pending, t0 = nil, nil, false, 0

function init(args)
    local dir = os.getenv("BENCH_WRK_LOG") or "."
    log = assert(io.open(dir .. "/wrk." .. tid .. ".log", "w"))
    req = wrk.format()
end

function request()
    local t = now_us()
    if pending then
        log:write(t0, " -1 0\n")
        failed = failed + 1
    end
    t0, pending = t, true
    attempts = attempts + 1
    return req
end

function response(status, headers, body)
    local t = now_us()
    log:write(t0, " ", t - t0, " ", status, "\n")
    pending = false
    if status >= 200 and status < 300 then ok = ok + 1 else non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
    local a, o, n, f = 0, 0, 0, 0
    for _, thread in ipairs(threads) do
        a = a + thread:get("attempts")
        o = o + thread:get("ok")
        n = n + thread:get("non2xx")
        f = f + thread:get("failed")
    end
    local e = summary.errors
    io.write(string.format(
        "BENCHWRK attempts=%d ok=%d non2xx=%d failed_attempts=%d requests=%d " ..
        "duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
        a, o, n, f, summary.requests, summary.duration,
        e.connect, e.read, e.write, e.status, e.timeout))
end
