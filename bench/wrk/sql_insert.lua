-- One durable SQL insert per request into one object's table.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"query":"INSERT INTO events(at, payload) VALUES (?, ?)","params":[1700000000000,"an event payload"]}'
