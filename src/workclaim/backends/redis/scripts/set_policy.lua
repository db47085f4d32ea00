#!lua
-- set_policy: store a queue's four limits at once (policy:<queue>), keeping its paused flag;
-- no limit and not paused leaves no hash (nothing left to check). Publishes a wake-up
-- (a raised limit may free slots); with limits, marks the items of the queue's leases `flow`
-- (see _common.lua) so that their ends wake waiting claims too.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us (unused), queue, concurrency, group_concurrency, rate_count, rate_us,
--       rate_per (the window as given, text), group_rate_count, group_rate_us, group_rate_per
--       ('' = no such limit; a rate's three values are all '' or all set)
-- Reply: the stored policy as policy.lua's.
local queue = ARGV[3]
if queue == nil or queue == '' then bad('queue is missing') end
local fields = {}
local function put(name, i, low, high)
  local n = arg_int(i, name, low, high, true)
  if n ~= nil then
    fields[#fields + 1] = name
    fields[#fields + 1] = int(n)
  end
  return n
end
put('concurrency', 4, 1, 1000000)
put('group_concurrency', 5, 1, 1000000)
for _, r in ipairs({{'rate', 6}, {'group_rate', 9}}) do
  local count = put(r[1] .. '_count', r[2], 1, 1000000)
  local us = put(r[1] .. '_us', r[2] + 1, 1, MAX_SAFE)
  if (count == nil) ~= (us == nil) or (count == nil) ~= (ARGV[r[2] + 2] == '') then
    bad(r[1] .. ' needs a count, a window in microseconds and the window as given')
  end
  if count then
    fields[#fields + 1] = r[1] .. '_per'
    fields[#fields + 1] = ARGV[r[2] + 2]
  end  -- a lifted rate's claim records expire on their own (a rate set again counts them)
end
local pk = key('policy', queue)
local paused = redis.call('HGET', pk, 'paused')
redis.call('DEL', pk)
if paused then
  fields[#fields + 1] = 'paused'
  fields[#fields + 1] = paused
end
if #fields > 0 then redis.call('HSET', pk, unpack(fields)) end
if #fields > (paused and 2 or 0) then
  -- Limits: the leases given before them must wake waiting claims when they end, like the
  -- ones given after (their items are marked; one HSET per lease of the queue).
  for _, sid in ipairs(redis.call('ZRANGE', key('claimed', queue), 0, -1)) do
    redis.call('HSET', key('item', sid), 'flow', '1')
  end
end
wake()
return redis.call('HGETALL', pk)
