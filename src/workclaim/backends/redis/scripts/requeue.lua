#!lua
-- requeue: dead -> queued now, with attempts reset (and max_attempts replaced if given).
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us ('' = TIME), id, max_attempts ('' = keep)
-- Reply: {1} requeued (publishes a wake-up); {0} no such item; {3, status} the item is not
--        dead; {4} its dedupe key is held by another live item (nothing changed either way).
local now = clock()
local id = arg_int(3, 'id', 1, MAX_SAFE)
local max_attempts = arg_int(4, 'max_attempts', 1, 1000000, true)
local ik = key('item', int(id))
local f = redis.call('HMGET', ik, 'status', 'queue', 'priority', 'dedupe_key', 'history',
  'group')
if not f[1] then return {0} end
if f[1] ~= 'dead' then return {3, f[1]} end
local queue = f[2]
if f[4] then
  local held = redis.call('HGET', key('dedupe', queue), f[4])
  if held and held ~= int(id) then return {4} end
  redis.call('HSET', key('dedupe', queue), f[4], int(id))
end
redis.call('HSET', ik, 'status', 'queued', 'attempts', '0', 'run_at', int(now),
  'updated_at', int(now), 'finished_at', '', 'expires_at', '')
if max_attempts then redis.call('HSET', ik, 'max_attempts', int(max_attempts)) end
redis.call('ZREM', key('dead', queue), int(id))
place(id, queue, tonumber(f[3]), now, now, f[6] or '')
move(int(id), queue, 'dead', 'queued')
note(int(id), f[5], 'requeued', now, 0, 'queued')
wake()
return {1}
