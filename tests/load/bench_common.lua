-- Shared by the wrk scenarios of tools/bench.sh (loaded with dofile by each of them).
--
-- Environment:
--   BENCH_SESSIONS  file with one session cookie value per line (logged-in scenarios)
--   BENCH_USERS     file with one "email password" per line (login scenario)
--   BENCH_PRODUCTS  comma-separated product ids to add to carts (default "1")
--
-- Threads: setup() numbers the threads so that each takes its own share of the
-- sessions (thread i gets lines i, i + nthreads, ...). done() prints one machine-
-- readable line that tools/bench.sh reads instead of wrk's human summary.
local M = {}

local nthreads = 0

function M.setup(thread)
    thread:set("thread_id", nthreads)
    nthreads = nthreads + 1
end

-- Lines of file path (without empty ones); fails loudly when the file is missing.
function M.lines(path)
    local out = {}
    local f = assert(io.open(path, "r"), "cannot open " .. tostring(path))
    for line in f:lines() do
        if line ~= "" then out[#out + 1] = line end
    end
    f:close()
    return out
end

-- This thread's share of list: every nthreads-th item starting at its id. A thread whose
-- share would be empty (more threads than items) takes item id % #list.
function M.share(list, id, count)
    local mine = {}
    for i = id + 1, #list, count do mine[#mine + 1] = list[i] end
    if #mine == 0 and #list > 0 then mine[1] = list[(id % #list) + 1] end
    return mine
end

function M.products()
    local ids = {}
    for id in string.gmatch(os.getenv("BENCH_PRODUCTS") or "1", "%d+") do ids[#ids + 1] = tonumber(id) end
    return ids
end

function M.done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH requests=%d duration_us=%d rps=%.2f p50_us=%d p99_us=%d max_us=%d " ..
        "connect=%d read=%d write=%d timeout=%d status=%d\n",
        summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
        latency:percentile(50), latency:percentile(99), latency.max,
        e.connect, e.read, e.write, e.timeout, e.status))
end

return M
