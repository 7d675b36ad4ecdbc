-- A 1 KiB JSON POST for tools/bench-tls.sh.
wrk.method = "POST"
wrk.body = '{"note": "' .. string.rep("x", 1012) .. '"}'
wrk.headers["Content-Type"] = "application/json"
