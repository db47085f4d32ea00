"""The API's routes, one module per audience: `workers` (claim and end leases), `producers`
(enqueue, and read or cancel their items), `admin` (the `admin` scope's listings, stats and
repairs), `flow` (the `admin` scope's flow control: policy, pause, resume, busiest groups),
`schedules` (the `admin` scope's schedules: list, read, declare, remove, run now) and
`operations` (health, readiness, metrics). `app.create_app` includes each router;
the dashboard's are in `server/dashboard.py`.

Each route is thin: check scope, call `AsyncQueue`, shape the answer. What they share is in
`server/deps.py` (state, caller, clock, scope checks), `server/claiming.py` (the claim path) and
`server/openapi.py` (the documented error answers).
"""
