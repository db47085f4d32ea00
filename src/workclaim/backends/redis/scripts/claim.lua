#!lua
-- claim: lease up to `limit` claimable items of the named queues in the fair order, within
-- their policies (docs/contract.md "Flow control"; (priority, run_at, id) without groups).
-- First returns at most reap_limit expired leases (any queue) to queued, or to dead when no
-- attempt is left, and moves at most promote_limit due delayed items per queue to ready.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us ('' = TIME), worker, lease_us, limit, reap_limit, promote_limit,
--       queue count, queue names...
-- Reply: a flat array, 9 values per lease in claim order:
--        id, queue, payload, token, attempt, max_attempts, expires_at_us, group ('' = default),
--        created_at_us (the enqueue time)
--@include _claim.lua
--@include _flow.lua
local now = clock()
local a, next_arg = claim_args(3, 1)
if #ARGV ~= next_arg - 1 then bad('expected ' .. int(#a.queues) .. ' queue names') end
return claim_items(now, a)
