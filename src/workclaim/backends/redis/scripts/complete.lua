#!lua
-- complete: mark the item of a current, unexpired lease done, storing the result text.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us ('' = TIME), id, token, worker, has_result ('1' or '0'), result
-- Reply: {1} done now; {2, 'done'} a repeat of the complete that ended this lease;
--        {0} the lease is lost (nothing changed).
local now = clock()
if ARGV[6] ~= '1' and ARGV[6] ~= '0' then bad('has_result must be 1 or 0') end
local lease = fence(now)
if lease == nil then return repeat_or_lost('complete') end
local ik = key('item', int(lease.id))
redis.call('HSET', ik, 'status', 'done', 'finished_at', int(now), 'updated_at', int(now),
  ended(lease, 'complete', 'done'))
if ARGV[6] == '1' then
  redis.call('HSET', ik, 'result', ARGV[7])
  redis.call('HDEL', ik, 'expires_at')
else
  redis.call('HDEL', ik, 'expires_at', 'result')
end
unlease(lease.id, lease.queue)
finish(lease.id, lease.queue, 'done', lease.dedupe_key, now)
return {1}
