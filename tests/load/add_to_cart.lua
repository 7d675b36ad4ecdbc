-- tools/bench-database.sh: a logged-in shopper adding to the cart. Every request is
-- POST /cart/items with one unit of the first of BENCH_PRODUCTS; re-adding a product
-- sets its quantity, so the cart stays the same size however long the run. Each thread
-- rotates through its share of the BENCH_SESSIONS cookies (BENCH_THREADS threads).
local common = dofile((os.getenv("BENCH_LUA_DIR") or "tests/load") .. "/bench_common.lua")
setup = common.setup
done = common.done

local requests = {}
local n = 0

function init(args)
    local all = common.lines(os.getenv("BENCH_SESSIONS"))
    local mine = common.share(all, thread_id or 0, tonumber(os.getenv("BENCH_THREADS") or "1"))
    local body = string.format('{"product_id": %d, "quantity": 1}', common.products()[1])
    for i, token in ipairs(mine) do
        requests[i] = wrk.format("POST", "/cart/items",
            {["Content-Type"] = "application/json", ["Cookie"] = "session=" .. token}, body)
    end
end

function request()
    n = n + 1
    return requests[((n - 1) % #requests) + 1]
end
