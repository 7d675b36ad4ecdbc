-- tools/bench.sh: a logged-in shopper adding to the cart and viewing it. Each request
-- alternates POST /cart/items (one unit of one of BENCH_PRODUCTS) and GET /cart, and
-- rotates through this thread's share of the BENCH_SESSIONS cookies, so that many carts
-- are touched. Stock is made large by the bench, so adds never run out.
local common = dofile((os.getenv("BENCH_LUA_DIR") or "tests/load") .. "/bench_common.lua")
setup = common.setup
done = common.done

local sessions, products
local n = 0

function init(args)
    local all = common.lines(os.getenv("BENCH_SESSIONS"))
    sessions = common.share(all, thread_id or 0, tonumber(os.getenv("BENCH_THREADS") or "1"))
    products = common.products()
end

function request()
    n = n + 1
    local cookie = "session=" .. sessions[(math.floor((n - 1) / 2) % #sessions) + 1]
    if n % 2 == 1 then
        local pid = products[(math.floor(n / 2) % #products) + 1]
        return wrk.format("POST", "/cart/items",
            {["Content-Type"] = "application/json", ["Cookie"] = cookie},
            string.format('{"product_id": %d, "quantity": 1}', pid))
    end
    return wrk.format("GET", "/cart", {["Cookie"] = cookie})
end
