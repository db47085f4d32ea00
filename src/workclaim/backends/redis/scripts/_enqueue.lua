-- _enqueue.lua: storing new items, shared by enqueue.lua and fire_schedule.lua (each has the
-- line `--@include _enqueue.lua`; not a script itself).

-- The item whose eight values start after ARGV[base] (payload, priority, run_at_us ('' = now +
-- delay_us), delay_us, max_attempts, dedupe_key ('' = none), history ('1' / '0'), group ('' =
-- the queue's default group)), validated; nothing is written.
local function item_arg(base, now)
  local run_at = arg_int(base + 3, 'run_at', -MAX_SAFE, MAX_SAFE, true)
  local delay = arg_int(base + 4, 'delay_us', 0, MAX_SAFE)
  local dedupe = ARGV[base + 6]
  return {
    payload = ARGV[base + 1],
    priority = arg_int(base + 2, 'priority', -2147483648, 2147483647),
    run_at = run_at or (now + delay),
    max_attempts = arg_int(base + 5, 'max_attempts', 1, 1000000),
    dedupe = dedupe ~= '' and dedupe or nil,
    history = ARGV[base + 7] == '1',
    group = ARGV[base + 8],
  }
end

-- Store validated items (from item_arg) as queued in `queue`, all or none: a held dedupe key
-- gives the live item's id instead. Returns the ids in input order; publishes one wake-up when
-- it created an item.
local function enqueue_items(queue, items, now)
  local next_id = tonumber(redis.call('GET', key('ids')) or '0')
  if next_id + #items > MAX_SAFE then bad('item ids are exhausted (2^53)') end
  local ids = {}
  local created = false
  local later = {}  -- the groups given ready items: their place in the groups index, once each
  local dedupe_key = key('dedupe', queue)
  for i, item in ipairs(items) do
    local held = item.dedupe and redis.call('HGET', dedupe_key, item.dedupe)
    if held then
      ids[i] = tonumber(held)
    else
      local id = redis.call('INCR', key('ids'))
      local fields = {'queue', queue, 'payload', item.payload, 'status', 'queued',
        'priority', int(item.priority), 'run_at', int(item.run_at), 'attempts', '0',
        'max_attempts', int(item.max_attempts), 'created_at', int(now), 'updated_at', int(now)}
      if item.dedupe then
        fields[#fields + 1] = 'dedupe_key'
        fields[#fields + 1] = item.dedupe
        redis.call('HSET', dedupe_key, item.dedupe, int(id))
      end
      if item.history then
        fields[#fields + 1] = 'history'
        fields[#fields + 1] = '1'
      end
      if item.group ~= '' then
        fields[#fields + 1] = 'group'
        fields[#fields + 1] = item.group
      end
      redis.call('HSET', key('item', int(id)), unpack(fields))
      place(id, queue, item.priority, item.run_at, now, item.group, later)
      move(int(id), queue, nil, 'queued')
      ids[i] = id
      created = true
    end
  end
  for group in pairs(later) do touched(queue, group) end
  if created then
    redis.call('SADD', key('queues'), queue)
    wake()
  end
  return ids
end
