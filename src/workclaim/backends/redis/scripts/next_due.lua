#!lua flags=no-writes
-- next_due: the earliest time after now at which the clock alone makes something in the named
-- queues claimable: a delayed item's run_at or a lease's expiry.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us ('' = TIME), queue count, queue names...
-- Reply: {} when nothing is due later; else {due_us}.
local now = clock()
local nq = arg_int(3, 'queue count', 1, 100000)
if #ARGV ~= 3 + nq then bad('expected ' .. int(nq) .. ' queue names') end
local best = nil
for q = 1, nq do
  for _, kind in ipairs({'delayed', 'claimed'}) do
    local r = redis.call('ZRANGEBYSCORE', key(kind, ARGV[3 + q]), '(' .. int(now), '+inf',
      'WITHSCORES', 'LIMIT', 0, 1)
    if #r > 0 then
      local t = tonumber(r[2])
      if best == nil or t < best then best = t end
    end
  end
end
if best == nil then return {} end
return {best}
