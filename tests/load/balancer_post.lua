-- A small JSON POST (the size of an add-to-cart) for tools/bench-balancer.sh.
wrk.method = "POST"
wrk.body = '{"product_id": 1, "quantity": 2}'
wrk.headers["Content-Type"] = "application/json"
