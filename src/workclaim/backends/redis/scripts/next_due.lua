#!lua flags=no-writes
-- next_due: the earliest time at which the clock alone makes something in the named queues
-- claimable: now when one of their leases has expired and is not reaped yet (the next claim of
-- these queues reaps it), else the earliest later run_at of a delayed item, lease expiry (a
-- slot of a limited queue frees), or time a full rate window moves past the claim that filled
-- it (the queue's, from rate:<queue>; a group's, from rwake:<queue>, written by the claim).
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
  local rate = redis.call('HMGET', key('policy', queue), 'rate_count', 'rate_us')
  if rate[1] then  -- at its rate: when the window moves past the claim that filled it
    local count, us = tonumber(rate[1]), tonumber(rate[2])
    local rk, floor = key('rate', queue), '(' .. int(now - us)
    local n = redis.call('ZCOUNT', rk, floor, int(now))
    if n >= count then
      local r = redis.call('ZRANGEBYSCORE', rk, floor, int(now), 'WITHSCORES', 'LIMIT',
        n - count, 1)
      consider({r[1], tonumber(r[2]) + us})
    end
  end
  consider(redis.call('ZRANGEBYSCORE', key('rwake', queue), '(' .. int(now), '+inf',
    'WITHSCORES', 'LIMIT', 0, 1))  -- a group at its rate
end
if best == nil then return {} end
return {best}
