-- _common.lua: helpers placed after the shebang line of every workclaim script (not a script
-- itself). ARGV[1] is always the key prefix and ARGV[2] the caller's clock ('' = Redis TIME).
-- Times are integer microseconds since the Unix epoch, exact in Lua's doubles up to 2^53
-- (the years 1685-2255); ids and tokens stay below 2^53 too.

local PREFIX = ARGV[1]
local MAX_SAFE = 9007199254740991

-- The key of a kind, for one queue or item: the layout of keys.py.
local function key(kind, name)
  if name == nil then return PREFIX .. ':' .. kind end
  return PREFIX .. ':' .. kind .. ':' .. name
end

-- Refuse a bad argument before anything is written.
local function bad(message)
  error({err = 'ERR workclaim: ' .. message})
end

-- An integer as a decimal string (tostring would print 1.8e+15).
local function int(n)
  return string.format('%d', n)
end

-- ARGV[i] as an integer within [low, high], or nil when it is '' and optional.
local function arg_int(i, what, low, high, optional)
  local raw = ARGV[i]
  if raw == nil then bad('missing argument ' .. what) end
  if raw == '' and optional then return nil end
  local n = tonumber(raw)
  if n == nil or n ~= math.floor(n) or n < low or n > high then
    bad(what .. ' must be an integer in [' .. int(low) .. ', ' .. int(high) .. '], got ' .. raw)
  end
  return n
end

-- The `count` queue names from ARGV[first..], each once, in the given order: a name given twice
-- must not make a claim take the same item twice.
local function queue_args(first, count)
  local queues, seen = {}, {}
  for i = first, first + count - 1 do
    local name = ARGV[i]
    if not seen[name] then
      seen[name] = true
      queues[#queues + 1] = name
    end
  end
  return queues
end

-- The clock: the caller's explicit now (tests), else the server's TIME.
local function clock()
  local given = arg_int(2, 'now', -MAX_SAFE, MAX_SAFE, true)
  if given ~= nil then return given end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- The member of an item in ready:<queue>: fixed-width hex of run_at then of id, so that equal
-- priorities (scores) sort by (run_at, id). Negative run_at sorts first ('0' + 2^60 + run_at).
local function rank(run_at, id)
  local t
  if run_at >= 0 then
    t = '1' .. string.format('%015x', run_at)
  else
    t = '0' .. string.sub(string.format('%x', run_at), -15)
  end
  return t .. string.format('%014x', id)
end

-- (run_at, id) back from a ready member.
local function unrank(member)
  local run_at = tonumber(string.sub(member, 2, 16), 16)
  if string.sub(member, 1, 1) == '0' then run_at = run_at - 1152921504606846976 end
  return run_at, tonumber(string.sub(member, 17), 16)
end

-- Flow control (docs/redis.md, "Flow control"). The name of one group of a queue in a key:
-- '<length of queue>:<queue>:<group>', unambiguous whatever ':' either name holds; group '' is
-- the queue's default group (a group name is never empty).
local function gname(queue, group)
  return #queue .. ':' .. queue .. ':' .. group
end

-- A group's ready zset (score priority, member rank): the default group's is ready:<queue>.
local function ready_key(queue, group)
  if group == '' then return key('ready', queue) end
  return key('gready', gname(queue, group))
end

-- The groups index groups:<queue> (only while a named group of the queue has ready items; the
-- default group is in it then too): per group with ready items, score the priority of its
-- first item, member hex(served) .. rank(first item) .. group, where served (served:<queue>) is
-- the greatest token issued to an item of the group; so the index lists groups in the fair
-- order (priority, served, run_at, id). gidx:<queue> maps each group to its member. `served`:
-- the group's served token when the caller has it at hand (nil: read it).
local function reindex(queue, group, served)
  local ik, gk = key('groups', queue), key('gidx', queue)
  local old = redis.call('HGET', gk, group)
  local head = redis.call('ZRANGE', ready_key(queue, group), 0, 0, 'WITHSCORES')
  if #head == 0 then
    if old then
      redis.call('ZREM', ik, old)
      redis.call('HDEL', gk, group)
      -- Only the default group left: claims read ready:<queue> alone again.
      if group ~= '' and redis.call('ZCARD', ik) == 1 and redis.call('HEXISTS', gk, '') == 1 then
        redis.call('DEL', ik, gk)
      end
    end
    return
  end
  local fresh = group ~= '' and redis.call('EXISTS', ik) == 0
  served = served or tonumber(redis.call('HGET', key('served', queue), group) or '0')
  local member = string.format('%014x', served) .. head[1] .. group
  if member ~= old then
    if old then redis.call('ZREM', ik, old) end
    redis.call('ZADD', ik, head[2], member)
    redis.call('HSET', gk, group, member)
  end
  if fresh then
    -- The queue starts using groups. With no served token on record yet, every claim of it so
    -- far went the plain way (which records none) and took default-group items: when there was
    -- any, the default group counts as served now (no other group of the queue was ever served).
    local sk = key('served', queue)
    if redis.call('EXISTS', sk) == 0 and redis.call('EXISTS', key('claimed', queue),
        key('done', queue), key('dead', queue)) > 0 then
      redis.call('HSET', sk, '', redis.call('GET', key('tokens')) or '0')
    end
    reindex(queue, '')
  end
end

-- Keep the groups index of a queue in step after a group's ready items changed: always for a
-- named group, for the default group only while the index exists.
local function touched(queue, group, served)
  if group ~= '' or redis.call('EXISTS', key('groups', queue)) == 1 then
    reindex(queue, group, served)
  end
end

-- Put a queued item where a claim finds it: ready (its group's) when due, else delayed until
-- run_at. `group` is '' or nil for the default group. `later`: a set that collects the groups
-- given ready items, for the caller to call `touched` once per group (a batch), instead of now.
local function place(id, queue, priority, run_at, now, group, later)
  group = group or ''
  if run_at <= now then
    redis.call('ZADD', ready_key(queue, group), priority, rank(run_at, id))
    if later then later[group] = true else touched(queue, group) end
  else
    redis.call('ZADD', key('delayed', queue), int(run_at), int(id))
  end
end

-- Take a queued item out of ready or delayed (whichever holds it).
local function unplace(id, queue, run_at, group)
  group = group or ''
  if redis.call('ZREM', ready_key(queue, group), rank(run_at, id)) == 1 then
    touched(queue, group)
  end
  redis.call('ZREM', key('delayed', queue), int(id))
end

-- Record a lease (or its new expiry) in the lease indexes: leases and claimed:<queue>, and
-- for an item of a named group gclaimed:<queue/group> and nclaimed:<queue> (all named groups'
-- leases: the default group's live leases are the queue's less these).
local function enlease(sid, queue, group, s_expires)
  redis.call('ZADD', key('leases'), s_expires, sid)
  redis.call('ZADD', key('claimed', queue), s_expires, sid)
  if group and group ~= '' then
    redis.call('ZADD', key('gclaimed', gname(queue, group)), s_expires, sid)
    redis.call('ZADD', key('nclaimed', queue), s_expires, sid)
  end
end

-- Forget a lease in the lease indexes.
local function unlease(id, queue, group)
  redis.call('ZREM', key('leases'), int(id))
  redis.call('ZREM', key('claimed', queue), int(id))
  if group and group ~= '' then
    redis.call('ZREM', key('gclaimed', gname(queue, group)), int(id))
    redis.call('ZREM', key('nclaimed', queue), int(id))
  end
end

-- Book an item that just reached done, dead or cancelled (the zset <status>:<queue> by
-- finished_at, which stats counts and purge walks), and free its dedupe key.
local function finish(id, queue, status, dedupe_key, now)
  redis.call('ZADD', key(status, queue), int(now), int(id))
  if dedupe_key then
    local dk = key('dedupe', queue)
    if redis.call('HGET', dk, dedupe_key) == int(id) then redis.call('HDEL', dk, dedupe_key) end
  end
end

-- Whether a queue holds no item in any status (its entry in the queues set can go).
local function is_empty(queue)
  for _, kind in ipairs({'ready', 'delayed', 'claimed', 'done', 'dead', 'cancelled'}) do
    if redis.call('EXISTS', key(kind, queue)) == 1 then return false end
  end
  return redis.call('EXISTS', key('ids', 'queued:' .. queue)) == 0  -- named groups' ready
end

-- Tell waiting claims (in every process) that work may be claimable.
local function wake()
  redis.call('PUBLISH', key('wakeup'), '1')
end

-- Move an item between the id indexes ids:<status>:<queue> (score = member = id), which list
-- a queue's queued, done, dead or cancelled items by id (`items`); from or to is nil for
-- claimed, which `items` lists from claimed:<queue> (kept by the lease code, no extra writes).
local function move(sid, queue, from, to)
  if from then redis.call('ZREM', key('ids', from .. ':' .. queue), sid) end
  if to then redis.call('ZADD', key('ids', to .. ':' .. queue), sid, sid) end
end

-- Append one event to the item's attempt history when its stored flag ('1') says so; one
-- RPUSH of kind|at|attempt|status|token|worker|error ('' for none; the error comes last and may
-- contain '|'; worker names cannot).
local function note(sid, flag, kind, now, attempt, status, token, worker, err)
  if flag == '1' then
    redis.call('RPUSH', key('history', sid), kind .. '|' .. int(now) .. '|' .. int(attempt)
      .. '|' .. status .. '|' .. (token and int(token) or '') .. '|' .. (worker or '') .. '|'
      .. (err or ''))
  end
end

-- An item's `flow` field is '1' once a claim leased it from a queue with limits (or
-- set_policy gave its queue limits while it was leased): its lease's end frees a slot that
-- waiting claims must hear of. Ending a lease of any other item (every item of a queue never
-- limited) publishes nothing more and reads no extra key.

-- The fence of every call with a lease: the item's fields {queue, priority, run_at, attempts,
-- max_attempts, dedupe_key, lease_us, history, id, sid, token, worker, group, flow} when (id, token, worker)
-- is the item's current, unexpired lease; else nil.
local function fence_lease(id, token, worker, now)
  local sid = int(id)
  local f = redis.call('HMGET', key('item', sid), 'status', 'token', 'worker', 'expires_at',
    'queue', 'priority', 'run_at', 'attempts', 'max_attempts', 'dedupe_key', 'lease_us',
    'history', 'group', 'flow')
  if f[1] ~= 'claimed' or tonumber(f[2]) ~= token or f[3] ~= worker
      or tonumber(f[4]) <= now then
    return nil
  end
  return {queue = f[5], priority = tonumber(f[6]), run_at = tonumber(f[7]),
    attempts = tonumber(f[8]), max_attempts = tonumber(f[9]), dedupe_key = f[10] or nil,
    lease_us = tonumber(f[11]), history = f[12], id = id, sid = sid, token = token,
    worker = worker, group = f[13] or '', flow = f[14] == '1'}
end

-- The fence of a script about one lease: ARGV[3..5] = id, token, worker.
local function fence(now)
  return fence_lease(arg_int(3, 'id', 1, MAX_SAFE), arg_int(4, 'token', 1, MAX_SAFE), ARGV[5],
    now)
end

-- After a refused fence: {2, status} when this is a repeat of the call `op` that ended the
-- lease (id, token) (same token), else {0} (the lease is lost).
local function repeat_of(sid, token, op)
  local e = redis.call('HMGET', key('item', sid), 'ended_token', 'ended_op', 'ended_status')
  if e[1] and tonumber(e[1]) == tonumber(token) and e[2] == op then return {2, e[3]} end
  return {0}
end

-- repeat_of for the lease of ARGV[3..4].
local function repeat_or_lost(op)
  return repeat_of(ARGV[3], ARGV[4], op)
end

-- Mark how a lease ended, so that repeating that very call returns its outcome.
local function ended(lease, op, status)
  return 'ended_token', int(lease.token), 'ended_op', op, 'ended_status', status
end

-- complete's change for a fenced lease: done, the result text stored ('' = none: JSON text is
-- never empty), out of the lease indexes, booked as finished, one history event.
local function complete_lease(lease, result, now)
  local sid = lease.sid
  redis.call('HSET', key('item', sid), 'status', 'done', 'finished_at', int(now),
    'updated_at', int(now), 'expires_at', '', 'result', result, ended(lease, 'complete', 'done'))
  unlease(sid, lease.queue, lease.group)
  finish(sid, lease.queue, 'done', lease.dedupe_key, now)
  move(sid, lease.queue, nil, 'done')
  note(sid, lease.history, 'completed', now, lease.attempts, 'done', lease.token, lease.worker)
end
