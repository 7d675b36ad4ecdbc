-- A small JSON POST (what an add-to-cart looks like) for tools/bench-balancer.sh.
wrk.method = "POST"
wrk.body = '{"product_id": 1, "quantity": 2}'
wrk.headers["Content-Type"] = "application/json"
