#!lua
-- migrate: stamp the key layout's version under the prefix unless a newer one is there (2 -> 3
-- needs nothing else: an item without a group field is in its queue's default group, whose
-- ready zset is ready:<queue>, and the flow-control keys are made as they are used); or,
-- while the layout is 1, do one bounded step of the upgrade to 2: index one slice of one status
-- index of one queue into ids:<status>:<queue>, or drop the queue from the queues set when it
-- holds no item (the client walks every queue and index, then stamps).
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us (unused), version, then for a step: queue, source (ready, delayed,
--       done, dead, cancelled; or '-' = drop the queue if empty), offset, count
-- Reply: stamping: the version stored now (greater than ARGV[3] when a newer workclaim wrote
--        it); a step: the number of members indexed, or -1 when the layout is not 1 (nothing
--        done).
local version = arg_int(3, 'version', 1, 1000000)
local current = tonumber(redis.call('GET', key('schema')) or '0')
if ARGV[4] ~= nil then
  local queue, source = ARGV[4], ARGV[5]
  local offset = arg_int(6, 'offset', 0, MAX_SAFE)
  local count = arg_int(7, 'count', 1, 100000)
  if current ~= 1 then return -1 end
  if source == '-' then
    if is_empty(queue) then redis.call('SREM', key('queues'), queue) end
    return 0
  end
  local status = ({ready = 'queued', delayed = 'queued', done = 'done', dead = 'dead',
    cancelled = 'cancelled'})[source]
  if status == nil then bad('unknown source index ' .. source) end
  local members = redis.call('ZRANGE', key(source, queue), offset, offset + count - 1)
  for _, member in ipairs(members) do
    if source == 'ready' then
      local _, id = unrank(member)
      member = int(id)
    end
    move(member, queue, nil, status)
  end
  return #members
end
if current < version then
  redis.call('SET', key('schema'), int(version))
  current = version
end
return current
