-- tools/bench.sh: checkout. Run with as many wrk threads as connections (-t N -c N), so
-- that each thread drives one connection with one session: it alternates POST /cart/items
-- (one unit) and POST /checkout, and wrk sends a connection's next request only after the
-- answer to the previous one, so every checkout finds the item just added. Sessions must
-- not be shared between threads, or one thread's checkout would empty another's cart
-- (409): thread i takes line BENCH_SESSION_OFFSET + i + 1 of BENCH_SESSIONS.
--
-- The alternation advances in response(), not in request(): wrk calls request() once more
-- on the first thread before the run (to count pipelined requests), which would otherwise
-- shift that thread to a checkout first, on an empty cart.
local common = dofile((os.getenv("BENCH_LUA_DIR") or "tests/load") .. "/bench_common.lua")
setup = common.setup
done = common.done

local add, checkout
local add_next = true

function init(args)
    local all = common.lines(os.getenv("BENCH_SESSIONS"))
    local id = thread_id or 0
    local line = tonumber(os.getenv("BENCH_SESSION_OFFSET") or "0") + id + 1
    assert(line <= #all, "checkout.lua: not enough sessions in BENCH_SESSIONS for the threads")
    local cookie = "session=" .. all[line]
    local products = common.products()
    add = wrk.format("POST", "/cart/items", {["Content-Type"] = "application/json", ["Cookie"] = cookie},
        string.format('{"product_id": %d, "quantity": 1}', products[(id % #products) + 1]))
    checkout = wrk.format("POST", "/checkout", {["Cookie"] = cookie})
end

function request()
    if add_next then return add end
    return checkout
end

function response(status, headers, body)
    add_next = not add_next
end
