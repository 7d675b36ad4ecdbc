-- tools/bench.sh: a plain GET of the URL's path (GET /products, GET /browser/inventory),
-- with the machine-readable summary line of bench_common.lua.
local common = dofile((os.getenv("BENCH_LUA_DIR") or "tests/load") .. "/bench_common.lua")
setup = common.setup
done = common.done
