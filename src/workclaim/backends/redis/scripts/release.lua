#!lua
-- release: put the item of a current, unexpired lease back to queued at now + delay_us,
-- giving the attempt back.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us ('' = TIME), id, token, worker, delay_us
-- Reply: {1} released now (publishes a wake-up); {2, 'queued'} a repeat of the release that
--        ended this lease; {0} the lease is lost (nothing changed).
local now = clock()
local delay = arg_int(6, 'delay_us', 0, MAX_SAFE)
local lease = fence(now)
if lease == nil then return repeat_or_lost('release') end
local run_at = now + delay
local ik = key('item', int(lease.id))
redis.call('HSET', ik, 'status', 'queued', 'attempts', int(lease.attempts - 1),
  'run_at', int(run_at), 'updated_at', int(now), 'expires_at', '',
  ended(lease, 'release', 'queued'))
unlease(lease.id, lease.queue, lease.group)
place(lease.id, lease.queue, lease.priority, run_at, now, lease.group)
move(lease.sid, lease.queue, nil, 'queued')
note(lease.sid, lease.history, 'released', now, lease.attempts, 'queued', lease.token,
  lease.worker)
wake()
return {1}
