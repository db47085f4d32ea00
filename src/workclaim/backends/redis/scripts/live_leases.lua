#!lua flags=no-writes
-- live_leases: the groups of a queue holding the most live leases (claimed, expiring after
-- now): named groups counted from nclaimed:<queue> (one member per lease of a named group's
-- item), the default group as the queue's live leases less those.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us ('' = TIME), queue, limit
-- Reply: a flat array group ('' = default), live count per group, most first, ties by group
--        name (the default group first); groups with none left out; at most limit groups.
local now = clock()
local queue = ARGV[3]
local limit = arg_int(4, 'limit', 1, 100000)
local floor = '(' .. int(now)
local named = redis.call('ZRANGEBYSCORE', key('nclaimed', queue), floor, '+inf')
local counts = {}
for _, sid in ipairs(named) do
  local group = redis.call('HGET', key('item', sid), 'group') or ''
  counts[group] = (counts[group] or 0) + 1
end
local default = redis.call('ZCOUNT', key('claimed', queue), floor, '+inf') - #named
if default > 0 then counts[''] = default end
local rows = {}
for group, n in pairs(counts) do rows[#rows + 1] = {group, n} end
table.sort(rows, function(x, y)
  if x[2] ~= y[2] then return x[2] > y[2] end
  return x[1] < y[1]
end)
local out = {}
for i = 1, math.min(limit, #rows) do
  out[#out + 1] = rows[i][1]
  out[#out + 1] = rows[i][2]
end
return out
