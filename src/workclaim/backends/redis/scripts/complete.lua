#!lua
-- complete: mark the item of a current, unexpired lease done, storing the result text.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us ('' = TIME), id, token, worker, has_result ('1' or '0'), result
-- Reply: {1} done now ({1, 1}: a slot of a limited queue, a wake-up was published); {2, 'done'} a repeat of the complete that ended this lease;
--        {0} the lease is lost (nothing changed).
local now = clock()
if ARGV[6] ~= '1' and ARGV[6] ~= '0' then bad('has_result must be 1 or 0') end
local lease = fence(now)
if lease == nil then return repeat_or_lost('complete') end
complete_lease(lease, ARGV[6] == '1' and ARGV[7] or '', now)
if lease.flow then  -- a slot of a limited queue is free: wake waiting claims
  wake()
  return {1, 1}
end
return {1}
