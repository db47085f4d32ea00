-- _flow.lua: the flow-controlled claim and `claim_items`, which picks it or the plain one
-- (placed after `--@include _claim.lua` in claim.lua and complete_and_claim.lua; not a script
-- itself). docs/contract.md "Flow control" is the rule; docs/redis.md says how the keys hold it.

local WALK_PAGE = 64  -- groups index entries read per ZRANGE
local WALK_LIMIT = 10000  -- groups index entries one claim looks at per queue and round, at most

-- The smaller of two limits, nil meaning none.
local function least(x, y)
  if x == nil then return y end
  if y == nil then return x end
  return math.min(x, y)
end

-- Live leases in a lease zset (score expires_at): those expiring after now.
local function live(k, now)
  return redis.call('ZCOUNT', k, '(' .. int(now), '+inf')
end

-- Claims recorded in a rate zset (score the claim's time, member its token) in the window
-- (now - us, now], after dropping the ones that aged out of it.
local function in_window(k, now, us)
  redis.call('ZREMRANGEBYSCORE', k, '-inf', int(now - us))
  return redis.call('ZCOUNT', k, '(' .. int(now - us), int(now))
end

-- Record a claim at `now` in a rate zset; the key outlives its window by a minute at most.
local function record(k, now, us, token)
  redis.call('ZADD', k, int(now), int(token))
  redis.call('PEXPIRE', k, math.floor(us / 1000) + 60000)
end

-- A queue's state for this claim: its policy and how many more items the queue may take
-- (`left`, nil = no limit), its groups' states (filled as met), the groups served this round.
local function queue_state(queue, now)
  local f = redis.call('HMGET', key('policy', queue), 'concurrency', 'group_concurrency',
    'rate_count', 'rate_us', 'group_rate_count', 'group_rate_us', 'paused')
  local st = {queue = queue, groups = {}, served = {}, conc = tonumber(f[1]),
    gconc = tonumber(f[2]), rc = tonumber(f[3]), rus = tonumber(f[4]), grc = tonumber(f[5]),
    grus = tonumber(f[6]), grouped = redis.call('EXISTS', key('groups', queue)) == 1}
  st.limited = (st.conc or st.gconc or st.rc or st.grc) ~= nil
  if f[7] == '1' then
    st.left = 0
  else
    if st.conc then st.left = st.conc - live(key('claimed', queue), now) end
    if st.rc then
      st.left = least(st.left, st.rc - in_window(key('rate', queue), now, st.rus))
    end
  end
  return st
end

-- How many more items `group` of the queue may take (`left`, nil = no limit), looked up once.
local function group_state(st, group, now)
  local g = st.groups[group]
  if g then return g end
  local left
  if st.gconc then
    local n
    if group == '' then
      n = live(key('claimed', st.queue), now) - live(key('nclaimed', st.queue), now)
    else
      n = live(key('gclaimed', gname(st.queue, group)), now)
    end
    left = st.gconc - n
  end
  if st.grc then
    left = least(left, st.grc - in_window(key('grate', gname(st.queue, group)), now, st.grus))
  end
  g = {left = left}
  st.groups[group] = g
  return g
end

-- Propose the queue's next claimable items, at most `want`, into `props`: at the first
-- priority where a group the limits admit has due items, the items of each such group of that
-- priority (as many as the group and the queue may take), each as {priority, k, served, run_at,
-- id, member, state, group} with k its position in its group; groups in the index's fair order,
-- stopping after as many groups as items are wanted (the first round fills the claim then).
local function propose(st, want, now, props)
  local cap = least(want, st.left)
  if cap <= 0 then return end
  local function offer(group, served, priority)
    local allow = least(cap, group_state(st, group, now).left)
    if allow <= 0 then return false end
    local r = redis.call('ZRANGEBYSCORE', ready_key(st.queue, group), priority, priority,
      'LIMIT', 0, allow)
    local k = 0
    for _, member in ipairs(r) do
      local run_at, id = unrank(member)
      if run_at <= now then  -- a caller's clock behind the one that made it ready: not yet
        k = k + 1
        props[#props + 1] = {tonumber(priority), k, served, run_at, id, member, st, group}
      end
    end
    return k > 0
  end
  if not st.grouped then  -- only the default group has ready items
    local head = redis.call('ZRANGE', key('ready', st.queue), 0, 0, 'WITHSCORES')
    if #head > 0 then
      offer('', tonumber(redis.call('HGET', key('served', st.queue), '') or '0'), head[2])
    end
    return
  end
  local index = key('groups', st.queue)
  local found, priority = 0, nil
  for start = 0, WALK_LIMIT - 1, WALK_PAGE do
    local r = redis.call('ZRANGE', index, start, start + WALK_PAGE - 1, 'WITHSCORES')
    for i = 1, #r, 2 do
      if priority and tonumber(r[i + 1]) ~= priority then return end
      local member = r[i]
      if offer(string.sub(member, 45), tonumber(string.sub(member, 1, 14), 16), r[i + 1]) then
        priority = tonumber(r[i + 1])
        found = found + 1
        if found >= cap then return end
      end
    end
    if #r < 2 * WALK_PAGE then return end
  end
end

-- After a round: store the served tokens of the groups it served and move them in the groups
-- index (a served group goes after those served less recently). A queue that never used
-- groups keeps none (it may be claimed beside a limited queue and stays on the plain path for
-- its own claims; the first group it gets counts its default group as served then).
local function end_round(st)
  if next(st.served) == nil then return end
  if st.grouped or redis.call('EXISTS', key('served', st.queue)) == 1 then
    for group, token in pairs(st.served) do
      redis.call('HSET', key('served', st.queue), group, int(token))
      touched(st.queue, group, token)
    end
    st.grouped = redis.call('EXISTS', key('groups', st.queue)) == 1
  end
  st.served = {}
end

-- The time at which a group at its rate may claim again (its window moves past the claim that
-- filled it) goes into rwake:<queue> (score that time, member the group), which next_due reads.
local function note_group_rates(st, now)
  if not st.grc then return end
  local wk = key('rwake', st.queue)
  redis.call('ZREMRANGEBYSCORE', wk, '-inf', int(now))
  for group, g in pairs(st.groups) do
    if g.left and g.left <= 0 then
      local rk = key('grate', gname(st.queue, group))
      local floor = '(' .. int(now - st.grus)
      local n = redis.call('ZCOUNT', rk, floor, int(now))
      if n >= st.grc then
        local r = redis.call('ZRANGEBYSCORE', rk, floor, int(now), 'WITHSCORES', 'LIMIT',
          n - st.grc, 1)
        redis.call('ZADD', wk, int(tonumber(r[2]) + st.grus), group)
        redis.call('PEXPIRE', wk, math.floor(st.grus / 1000) + 60000)
      end
    end
  end
end

-- The flow-controlled claim: up to `limit` items in the fair order (priority, k, served,
-- run_at, id) across the queues, or in the plain order (priority, run_at, id) when no claimed
-- queue uses groups, each only if the queue's and its group's limits admit it after the items
-- taken before it, none from a paused queue. Round by round: every queue proposes its next
-- items, the ones of the lowest priority are taken in that order.
local function claim_flow(now, a)
  local states = {}
  -- Without groups every item is in its queue's default group, and the contract keeps the
  -- plain (priority, run_at, id) order across the queues (issue 15): ranking by k (position in
  -- its group) would make each queue's default group a turn of its own. So the sort then skips
  -- k and served (positions 2 and 3). A claim cannot make a queue grouped (it only takes
  -- items), so this holds for all its rounds; with one queue both orders are the same (k
  -- follows (run_at, id) within the one group), so only claims over several queues change.
  local plain = true
  for i, queue in ipairs(a.queues) do
    states[i] = queue_state(queue, now)
    plain = plain and not states[i].grouped
  end
  local first = plain and 4 or 2
  local out, want = {}, a.limit
  while want > 0 do
    local props = {}
    for _, st in ipairs(states) do propose(st, want, now, props) end
    if #props == 0 then break end
    local priority = props[1][1]
    for _, c in ipairs(props) do priority = math.min(priority, c[1]) end
    local chosen = {}
    for _, c in ipairs(props) do
      if c[1] == priority then chosen[#chosen + 1] = c end
    end
    table.sort(chosen, function(x, y)
      for i = first, 5 do
        if x[i] ~= y[i] then return x[i] < y[i] end
      end
      return false
    end)
    for _, c in ipairs(chosen) do
      if want == 0 then break end
      local st, group = c[7], c[8]
      local g = st.groups[group]
      if (st.left == nil or st.left > 0) and (g.left == nil or g.left > 0) then
        local token = take(now, a, out, c[5], c[6], st.queue, group, st.limited)
        want = want - 1
        if st.left then st.left = st.left - 1 end
        if g.left then g.left = g.left - 1 end
        if st.rc then record(key('rate', st.queue), now, st.rus, token) end
        if st.grc then record(key('grate', gname(st.queue, group)), now, st.grus, token) end
        st.served[group] = token
      end
    end
    for _, st in ipairs(states) do end_round(st) end
  end
  for _, st in ipairs(states) do note_group_rates(st, now) end
  return out
end

-- Reap, make due delayed items ready, then lease up to `limit` items: the plain way when no
-- queue has a policy, groups in use or a served group on record (a queue that used groups
-- keeps its groups' served tokens, and the flow-controlled claim keeps them up to date), else
-- the flow-controlled way. Returns the flat reply of
-- claim: id, queue, payload, token, attempt, max_attempts, expires_at_us, group per lease.
local function claim_items(now, a)
  reap(now, a.queues, a.reap_limit)
  if a.limit == 0 then return {} end
  local flow = false
  for _, queue in ipairs(a.queues) do
    promote(queue, now, a.promote_limit)
    flow = flow or
      redis.call('EXISTS', key('policy', queue), key('groups', queue), key('served', queue)) > 0
  end
  if flow then return claim_flow(now, a) end
  return claim_plain(now, a)
end
