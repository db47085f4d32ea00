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
-- '' stands for "none" in expires_at and result (JSON text is never empty).
redis.call('HSET', ik, 'status', 'done', 'finished_at', int(now), 'updated_at', int(now),
  'expires_at', '', 'result', ARGV[6] == '1' and ARGV[7] or '', ended(lease, 'complete', 'done'))
unlease(lease.id, lease.queue)
finish(lease.id, lease.queue, 'done', lease.dedupe_key, now)
return {1}
