-- tools/bench.sh: POST /login with the JSON API, rotating through this thread's share of
-- the BENCH_USERS accounts. Every login verifies a scrypt hash (tens to hundreds of
-- milliseconds of CPU by design), so this scenario measures password hashing, not HTTP.
local common = dofile((os.getenv("BENCH_LUA_DIR") or "tests/load") .. "/bench_common.lua")
setup = common.setup
done = common.done

local bodies = {}
local n = 0

function init(args)
    local all = common.lines(os.getenv("BENCH_USERS"))
    for _, line in ipairs(common.share(all, thread_id or 0, tonumber(os.getenv("BENCH_THREADS") or "1"))) do
        local email, password = string.match(line, "^(%S+)%s+(%S+)$")
        bodies[#bodies + 1] = string.format('{"email": "%s", "password": "%s"}', email, password)
    end
end

function request()
    n = n + 1
    return wrk.format("POST", "/login", {["Content-Type"] = "application/json"}, bodies[(n % #bodies) + 1])
end
