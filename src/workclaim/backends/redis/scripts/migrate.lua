#!lua
-- migrate: stamp the key layout's version under the prefix unless one is there already; from
-- layout 1, first build the id indexes ids:<status>:<queue> from the status indexes and drop
-- empty queues from the queues set (one pass over every item id; Redis waits meanwhile).
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us (unused), version
-- Reply: the version stored now (greater than ARGV[3] when a newer workclaim wrote it).
local version = arg_int(3, 'version', 1, 1000000)
local current = tonumber(redis.call('GET', key('schema')) or '0')
if current == 1 and version >= 2 then
  for _, q in ipairs(redis.call('SMEMBERS', key('queues'))) do
    for _, sid in ipairs(redis.call('ZRANGE', key('ready', q), 0, -1)) do
      local _, id = unrank(sid)
      move(int(id), q, nil, 'queued')
    end
    local sources = {delayed = 'queued', done = 'done', dead = 'dead',
      cancelled = 'cancelled'}
    for source, status in pairs(sources) do
      for _, sid in ipairs(redis.call('ZRANGE', key(source, q), 0, -1)) do
        move(sid, q, nil, status)
      end
    end
    if is_empty(q) then redis.call('SREM', key('queues'), q) end
  end
end
if current < version then
  redis.call('SET', key('schema'), int(version))
  current = version
end
return current
