#!lua
-- fail: record an error for a current, unexpired lease; queued again at now + retry_us while
-- attempts remain and a retry was asked for, else dead.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us ('' = TIME), id, token, worker, error, retry_us ('' = no retry)
-- Reply: {1, status} the new status ('queued', or any freeing a slot of a limited queue,
--        publishes a wake-up); {2, status} a repeat of the
--        fail that ended this lease; {0} the lease is lost (nothing changed).
local now = clock()
local retry = arg_int(7, 'retry_us', 0, MAX_SAFE, true)
if ARGV[6] == nil then bad('error is missing') end
local lease = fence(now)
if lease == nil then return repeat_or_lost('fail') end
local ik = key('item', int(lease.id))
unlease(lease.id, lease.queue, lease.group)
if retry ~= nil and lease.attempts < lease.max_attempts then
  local run_at = now + retry
  redis.call('HSET', ik, 'status', 'queued', 'run_at', int(run_at), 'last_error', ARGV[6],
    'updated_at', int(now), 'expires_at', '', ended(lease, 'fail', 'queued'))
  place(lease.id, lease.queue, lease.priority, run_at, now, lease.group)
  move(lease.sid, lease.queue, nil, 'queued')
  note(lease.sid, lease.history, 'failed', now, lease.attempts, 'queued', lease.token,
    lease.worker, ARGV[6])
  wake()
  return {1, 'queued'}
end
redis.call('HSET', ik, 'status', 'dead', 'finished_at', int(now), 'last_error', ARGV[6],
  'updated_at', int(now), 'expires_at', '', ended(lease, 'fail', 'dead'))
finish(lease.id, lease.queue, 'dead', lease.dedupe_key, now)
move(lease.sid, lease.queue, nil, 'dead')
note(lease.sid, lease.history, 'failed', now, lease.attempts, 'dead', lease.token, lease.worker,
  ARGV[6])
if lease.flow then wake() end  -- a slot of a limited queue is free
return {1, 'dead'}
