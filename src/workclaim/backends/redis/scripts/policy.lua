#!lua flags=no-writes
-- policy: a queue's stored flow-control policy (policy:<queue>; none stored = no limits).
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us (unused), queue
-- Reply: the policy hash as a flat field/value array (fields as set_policy.lua stores them,
--        plus paused = '1'); empty when the queue has no policy.
return redis.call('HGETALL', key('policy', ARGV[3]))
