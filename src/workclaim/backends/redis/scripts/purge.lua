#!lua
-- purge: delete at most `limit` finished items (done, dead, cancelled) of one queue, or of
-- every queue that holds items, whose finished_at <= now - older_us, with their histories;
-- a queue left with no item leaves the queues set.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us ('' = TIME), queue ('' = every queue), older_us, limit
-- Reply: the number of items deleted.
local now = clock()
local queue = ARGV[3]
local older = arg_int(4, 'older_us', 0, MAX_SAFE)
local limit = arg_int(5, 'limit', 0, 100000)
local cutoff = int(now - older)
local queues = {queue}
if queue == '' then queues = redis.call('SMEMBERS', key('queues')) end
local left = limit
for _, q in ipairs(queues) do
  local deleted = 0
  for _, status in ipairs({'done', 'dead', 'cancelled'}) do
    if left <= 0 then break end
    local index = key(status, q)
    local ids = redis.call('ZRANGEBYSCORE', index, '-inf', cutoff, 'LIMIT', 0, left)
    for _, sid in ipairs(ids) do
      redis.call('DEL', key('item', sid), key('history', sid))
      redis.call('ZREM', index, sid)
      move(sid, q, status, nil)
    end
    left = left - #ids
    deleted = deleted + #ids
  end
  if deleted > 0 and is_empty(q) then
    redis.call('SREM', key('queues'), q)
    redis.call('DEL', key('served', q))  -- no item left to be fair between (the policy stays)
  end
  if left <= 0 then break end
end
return limit - left
