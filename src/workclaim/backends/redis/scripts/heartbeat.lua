#!lua
-- heartbeat: push a current, unexpired lease's expiry to now + extend_us (or its own length).
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us ('' = TIME), id, token, worker, extend_us ('' = the lease's length)
-- Reply: {1, expires_at_us} when extended; {0} when the lease is lost (nothing changed).
local now = clock()
local extend = arg_int(6, 'extend_us', 1, MAX_SAFE, true)
local lease = fence(now)
if lease == nil then return {0} end
local expires = now + (extend or lease.lease_us)
local sid = int(lease.id)
redis.call('HSET', key('item', sid), 'expires_at', int(expires), 'updated_at', int(now))
enlease(sid, lease.queue, lease.group, int(expires))
note(sid, lease.history, 'heartbeat', now, lease.attempts, 'claimed', lease.token, lease.worker)
return {1, expires}
