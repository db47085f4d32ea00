#!lua flags=no-writes
-- items: up to `limit` items of one queue in one status, by ascending id above after_id.
-- queued, done, dead, cancelled: a range of ids:<status>:<queue>; claimed: the ids of
-- claimed:<queue> (one per live lease of the queue) sorted here.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us (unused), queue, status, limit, after_id (0 = from the start)
-- Reply: per item its id then its hash as a flat field/value array (like get's reply).
local queue = ARGV[3]
local status = ARGV[4]
local limit = arg_int(5, 'limit', 1, 100000)
local after = arg_int(6, 'after_id', 0, MAX_SAFE)
local ids
if status == 'claimed' then
  ids = {}
  for _, sid in ipairs(redis.call('ZRANGE', key('claimed', queue), 0, -1)) do
    local id = tonumber(sid)
    if id > after then ids[#ids + 1] = id end
  end
  table.sort(ids)
else
  ids = redis.call('ZRANGEBYSCORE', key('ids', status .. ':' .. queue), '(' .. int(after),
    '+inf', 'LIMIT', 0, limit)
end
local out = {}
for i = 1, math.min(limit, #ids) do
  local sid = int(ids[i])
  out[#out + 1] = ids[i]
  out[#out + 1] = redis.call('HGETALL', key('item', sid))
end
return out
