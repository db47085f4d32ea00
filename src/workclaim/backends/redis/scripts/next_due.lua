#!lua flags=no-writes
-- next_due: the earliest time at which the clock alone makes something in the named queues
-- claimable: now when one of their leases has expired and is not reaped yet (the next claim of
-- these queues reaps it), else the earliest later run_at of a delayed item or lease expiry.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us ('' = TIME), queue count, queue names...
-- Reply: {} when nothing is due; else {due_us}.
local now = clock()
local nq = arg_int(3, 'queue count', 1, 100000)
if #ARGV ~= 3 + nq then bad('expected ' .. int(nq) .. ' queue names') end
local best = nil
local function consider(r)
  if #r > 0 then
    local t = math.max(tonumber(r[2]), now)
    if best == nil or t < best then best = t end
  end
end
for _, queue in ipairs(queue_args(4, nq)) do
  consider(redis.call('ZRANGEBYSCORE', key('delayed', queue), '(' .. int(now), '+inf',
    'WITHSCORES', 'LIMIT', 0, 1))
  consider(redis.call('ZRANGE', key('claimed', queue), 0, 0, 'WITHSCORES'))  -- expired: now
end
if best == nil then return {} end
return {best}
