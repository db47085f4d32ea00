-- _claim.lua: the claim step shared by claim.lua and complete_and_claim.lua (placed where a
-- script has the line `--@include _claim.lua`; not a script itself).

local DEMOTE_LIMIT = 1000

-- The claim's arguments from ARGV[first..]: worker, lease_us, limit, reap_limit,
-- promote_limit, queue count, queue names. Returns them as a table and the next ARGV index.
-- `min_limit` is 1 for claim, 0 for complete_and_claim (complete only).
local function claim_args(first, min_limit)
  local a = {worker = ARGV[first]}
  if a.worker == nil or a.worker == '' then bad('worker is missing') end
  a.lease_us = arg_int(first + 1, 'lease_us', 1, MAX_SAFE)
  a.limit = arg_int(first + 2, 'limit', min_limit, 100000)
  a.reap_limit = arg_int(first + 3, 'reap_limit', 0, 100000)
  a.promote_limit = arg_int(first + 4, 'promote_limit', 0, 100000)
  local nq = arg_int(first + 5, 'queue count', 1, 100000)
  if #ARGV < first + 5 + nq then bad('expected ' .. int(nq) .. ' queue names') end
  a.queues = queue_args(first + 6, nq)
  return a, first + 6 + nq
end

-- Return the expired leases `sids` (of `of_queue` when given) to queued, or to dead when no
-- attempt is left, each with an 'expired' history event; one no longer claimed (reaped
-- already) only leaves the lease indexes, so that none keeps reporting it due.
local function reap_each(sids, now, of_queue)
  for _, sid in ipairs(sids) do
    local ik = key('item', sid)
    local f = redis.call('HMGET', ik, 'status', 'queue', 'attempts', 'max_attempts', 'worker',
      'token', 'priority', 'run_at', 'dedupe_key', 'history', 'group')
    local id = tonumber(sid)
    if f[1] ~= 'claimed' then
      redis.call('ZREM', key('leases'), sid)
      if f[2] or of_queue then unlease(sid, f[2] or of_queue, f[11]) end
    else
      local queue, group = f[2], f[11] or ''
      unlease(sid, queue, group)
      local why = 'lease expired (worker ' .. (f[5] or '?') .. ', token ' .. f[6] .. ')'
      local status = 'queued'
      if tonumber(f[3]) < tonumber(f[4]) then
        redis.call('HSET', ik, 'status', 'queued', 'last_error', why, 'updated_at', int(now),
          'expires_at', '')
        place(id, queue, tonumber(f[7]), tonumber(f[8]), now, group)
      else
        status = 'dead'
        redis.call('HSET', ik, 'status', 'dead', 'last_error', why, 'finished_at', int(now),
          'updated_at', int(now), 'expires_at', '')
        finish(sid, queue, 'dead', f[9] or nil, now)
      end
      move(sid, queue, nil, status)
      note(sid, f[10], 'expired', now, tonumber(f[3]), status, f[6], f[5], why)
    end
  end
end

-- The bounded reap: at most reap_limit expired leases of each claimed queue, oldest first, so
-- that their expired items are claimable by this claim however many leases expired elsewhere;
-- then at most reap_limit of any queue, oldest first, so that queues nobody claims are reaped
-- too. The first look, at the oldest of any queue, nearly always finds nothing and ends it.
local function reap(now, queues, reap_limit)
  local oldest = redis.call('ZRANGEBYSCORE', key('leases'), '-inf', int(now), 'LIMIT', 0,
    reap_limit)
  if #oldest == 0 then return end
  for _, queue in ipairs(queues) do
    reap_each(redis.call('ZRANGEBYSCORE', key('claimed', queue), '-inf', int(now), 'LIMIT', 0,
      reap_limit), now, queue)
  end
  reap_each(oldest, now)
end

-- Make at most promote_limit due delayed items of the queue ready, each in its group's ready
-- zset, and keep the groups index in step.
local function promote(queue, now, promote_limit)
  local delayed = key('delayed', queue)
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', int(now), 'LIMIT', 0, promote_limit)
  if #due == 0 then return end
  local groups = {}
  for _, sid in ipairs(due) do
    local f = redis.call('HMGET', key('item', sid), 'priority', 'run_at', 'group')
    local group = f[3] or ''
    redis.call('ZREM', delayed, sid)
    redis.call('ZADD', ready_key(queue, group), f[1], rank(tonumber(f[2]), tonumber(sid)))
    groups[group] = true
  end
  for group in pairs(groups) do touched(queue, group) end
end

-- Lease one ready item of `queue`'s `group` ('' = default) with the next token: `member` is its
-- entry in the group's ready zset (nil: popped already); `flow`: the queue has limits (the
-- item is marked so that its lease's end wakes waiting claims). Appends the claim reply's values for
-- it to `out` (id, queue, payload, token, attempt, max_attempts, expires_at_us, group,
-- created_at_us) and returns the token.
local function take(now, a, out, id, member, queue, group, flow)
  local sid = int(id)
  local ik = key('item', sid)
  local f = redis.call('HMGET', ik, 'payload', 'attempts', 'max_attempts', 'history',
    'created_at')
  local token = redis.call('INCR', key('tokens'))
  local attempt = tonumber(f[2]) + 1
  local expires = now + a.lease_us
  local s_expires = int(expires)
  redis.call('HSET', ik, 'status', 'claimed', 'token', int(token), 'attempts', int(attempt),
    'worker', a.worker, 'expires_at', s_expires, 'lease_us', int(a.lease_us),
    'updated_at', int(now))
  if flow then redis.call('HSET', ik, 'flow', '1') end
  if member then redis.call('ZREM', ready_key(queue, group), member) end
  enlease(sid, queue, group, s_expires)
  move(sid, queue, 'queued', nil)
  note(sid, f[4], 'claimed', now, attempt, 'claimed', token, a.worker)
  local j = #out
  out[j + 1] = id
  out[j + 2] = queue
  out[j + 3] = f[1]
  out[j + 4] = token
  out[j + 5] = attempt
  out[j + 6] = tonumber(f[3])
  out[j + 7] = expires
  out[j + 8] = group
  out[j + 9] = f[5]
  return token
end

-- The plain claim, for queues that never used groups or a policy (everything is in the
-- default group, ready:<queue>; no served:<queue> yet): lease up to `limit` ready items in
-- (priority, run_at, id) order, as before flow control. Returns the flat reply of claim.
local function claim_plain(now, a)
  local queues, limit, nq = a.queues, a.limit, #a.queues
  local candidates = {}
  for q = 1, nq do
    local queue = queues[q]
    local delayed = key('delayed', queue)
    local ready = key('ready', queue)
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
    table.sort(candidates, function(x, y)
      if x[1] ~= y[1] then return x[1] < y[1] end
      if x[2] ~= y[2] then return x[2] < y[2] end
      return x[3] < y[3]
    end)
  end
  local out = {}
  for i = 1, math.min(limit, #candidates) do
    local c = candidates[i]
    take(now, a, out, c[3], nq > 1 and c[4] or nil, c[5], '')
  end
  return out
end
