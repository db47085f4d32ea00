-- Version 13: no JIT compilation in the functions that turn sequential scans off (issue 18).
--
-- `enable_seqscan = off` (version 8) does not forbid a sequential scan, it prices one at
-- 10^10, and a plan that cannot avoid one (reading a sequence is one: raise_floors reads
-- floor_raised) then costs more than `jit_above_cost`, so PostgreSQL compiles it with LLVM,
-- inlining and optimisation included, at every call: measured, 9 to 54 ms (median 19 ms) of CPU
-- for raise_floors' one-page throttle check, which every process runs once a second (10
-- processes: up to half a core of two on this machine). No statement of these functions gains
-- from JIT (each reads a handful of index entries), so it is off in each of them, as their
-- other settings are, whatever the server's `jit` says.
ALTER FUNCTION {schema}.claim SET jit = off;
ALTER FUNCTION {schema}.claim_flow SET jit = off;
ALTER FUNCTION {schema}.complete_and_claim SET jit = off;
ALTER FUNCTION {schema}.count_changed SET jit = off;
ALTER FUNCTION {schema}.raise_floors SET jit = off;
