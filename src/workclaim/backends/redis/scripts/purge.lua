#!lua
-- purge: delete at most `limit` finished items (done, dead, cancelled) of one queue, or of all
-- queues, whose finished_at <= now - older_us.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us ('' = TIME), queue ('' = every queue), older_us, limit
-- Reply: the number of items deleted.
local now = clock()
local queue = ARGV[3]
local older = arg_int(4, 'older_us', 0, MAX_SAFE)
local limit = arg_int(5, 'limit', 0, 100000)
local index = key('finished')
if queue ~= '' then index = key('finished', queue) end
local ids = redis.call('ZRANGEBYSCORE', index, '-inf', int(now - older), 'LIMIT', 0, limit)
for _, sid in ipairs(ids) do
  local ik = key('item', sid)
  local f = redis.call('HMGET', ik, 'status', 'queue')
  redis.call('ZREM', key('finished'), sid)
  if f[2] then
    redis.call('ZREM', key('finished', f[2]), sid)
    redis.call('HINCRBY', key('counts', f[2]), f[1], -1)
  end
  redis.call('DEL', ik)
end
return #ids
