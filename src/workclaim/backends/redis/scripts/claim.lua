#!lua
-- claim: lease up to `limit` claimable items of the named queues in (priority, run_at, id) order.
-- First returns at most reap_limit expired leases (any queue) to queued, or to dead when no
-- attempt is left, and moves at most promote_limit due delayed items per queue to ready.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us ('' = TIME), worker, lease_us, limit, reap_limit, promote_limit,
--       queue count, queue names...
-- Reply: a flat array, 7 values per lease in claim order:
--        id, queue, payload, token, attempt, max_attempts, expires_at_us
local now = clock()
local worker = ARGV[3]
local lease_us = arg_int(4, 'lease_us', 1, MAX_SAFE)
local limit = arg_int(5, 'limit', 1, 100000)
local reap_limit = arg_int(6, 'reap_limit', 0, 100000)
local promote_limit = arg_int(7, 'promote_limit', 0, 100000)
local nq = arg_int(8, 'queue count', 1, 100000)
if worker == nil or worker == '' then bad('worker is missing') end
if #ARGV ~= 8 + nq then bad('expected ' .. int(nq) .. ' queue names') end
local DEMOTE_LIMIT = 1000

-- 1. Expired leases go back to queued (attempt kept) or dead.
local expired = redis.call('ZRANGEBYSCORE', key('leases'), '-inf', int(now), 'LIMIT', 0,
  reap_limit)
for _, sid in ipairs(expired) do
  local ik = key('item', sid)
  local f = redis.call('HMGET', ik, 'status', 'queue', 'attempts', 'max_attempts', 'worker',
    'token', 'priority', 'run_at', 'dedupe_key')
  local id = tonumber(sid)
  if f[1] ~= 'claimed' then
    redis.call('ZREM', key('leases'), sid)
  else
    local queue = f[2]
    unlease(id, queue)
    local why = 'lease expired (worker ' .. (f[5] or '?') .. ', token ' .. f[6] .. ')'
    if tonumber(f[3]) < tonumber(f[4]) then
      redis.call('HSET', ik, 'status', 'queued', 'last_error', why, 'updated_at', int(now),
        'expires_at', '')
      place(id, queue, tonumber(f[7]), tonumber(f[8]), now)
    else
      redis.call('HSET', ik, 'status', 'dead', 'last_error', why, 'finished_at', int(now),
        'updated_at', int(now), 'expires_at', '')
      finish(id, queue, 'dead', f[9] or nil, now)
    end
  end
end

-- 2. Due delayed items become ready; 3. the best `limit` ready items of each queue.
local candidates = {}
for q = 1, nq do
  local queue = ARGV[8 + q]
  local delayed = key('delayed', queue)
  local ready = key('ready', queue)
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', int(now), 'LIMIT', 0, promote_limit)
  for _, sid in ipairs(due) do
    local f = redis.call('HMGET', key('item', sid), 'priority', 'run_at')
    redis.call('ZREM', delayed, sid)
    redis.call('ZADD', ready, f[1], rank(tonumber(f[2]), tonumber(sid)))
  end
  -- A caller's clock may run behind the one that made an item ready: such items go back to
  -- delayed (bounded), so that ready holds only items due by this claim's clock. One queue:
  -- pop the best items at once; several: look at each queue's best and pop the chosen later.
  local demoted = 0
  local heads
  repeat
    local changed = false
    local r
    if nq == 1 then
      r = redis.call('ZPOPMIN', ready, limit - #candidates)
    else
      heads = {}
      r = redis.call('ZRANGE', ready, 0, limit - 1, 'WITHSCORES')
    end
    for i = 1, #r, 2 do
      local run_at, id = unrank(r[i])
      if run_at <= now then
        local c = {tonumber(r[i + 1]), run_at, id, r[i], queue}
        if nq == 1 then candidates[#candidates + 1] = c else heads[#heads + 1] = c end
      elseif nq == 1 or demoted < DEMOTE_LIMIT then
        if nq > 1 then redis.call('ZREM', ready, r[i]) end
        redis.call('ZADD', delayed, int(run_at), int(id))
        demoted = demoted + 1
        changed = true
      end
    end
  until not changed or #r == 0 or demoted >= DEMOTE_LIMIT or
    (nq == 1 and #candidates >= limit)
  if nq > 1 then
    for _, c in ipairs(heads) do candidates[#candidates + 1] = c end
  end
end
if nq > 1 then
  table.sort(candidates, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[3] < b[3]
  end)
end

-- 4. Lease them in order; each gets the next token.
local out = {}
local n = math.min(limit, #candidates)
for i = 1, n do
  local c = candidates[i]
  local id, queue = c[3], c[5]
  local sid = int(id)
  local ik = key('item', sid)
  local f = redis.call('HMGET', ik, 'payload', 'attempts', 'max_attempts')
  local token = redis.call('INCR', key('tokens'))
  local attempt = tonumber(f[2]) + 1
  local expires = now + lease_us
  redis.call('HSET', ik, 'status', 'claimed', 'token', int(token), 'attempts', int(attempt),
    'worker', worker, 'expires_at', int(expires), 'lease_us', int(lease_us),
    'updated_at', int(now))
  if nq > 1 then redis.call('ZREM', key('ready', queue), c[4]) end
  redis.call('ZADD', key('leases'), int(expires), sid)
  redis.call('ZADD', key('claimed', queue), int(expires), sid)
  local j = #out
  out[j + 1] = id
  out[j + 2] = queue
  out[j + 3] = f[1]
  out[j + 4] = token
  out[j + 5] = attempt
  out[j + 6] = tonumber(f[3])
  out[j + 7] = expires
end
return out
