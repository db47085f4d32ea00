"""The spike, reproducible: claim strategies raced by OS processes, checked from their history.

- `history`: the event record every worker writes, and the checker that proves (or refutes) the
  no-duplicate promise from it.
- `strategies`: the ways to claim work that the spike compared; only `skip-locked` (workclaim's own
  `Queue.claim`) is a production path.
- `harness`: spawns worker processes, releases them with a barrier, records every attempt.
- `scenarios`, `report`, `cli`: the `workclaim bench` and `workclaim demo` commands.
"""
