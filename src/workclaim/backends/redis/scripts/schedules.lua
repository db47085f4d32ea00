#!lua
-- schedules: read one schedule or every schedule by name, in one consistent look.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us (unused), name ('' = every schedule)
-- Reply: per schedule found, by name: its name, then its hash as a flat field/value array.
local names
if ARGV[3] ~= nil and ARGV[3] ~= '' then
  names = {ARGV[3]}
else
  names = redis.call('ZRANGE', key('schedules'), 0, -1)
end
local out = {}
for _, name in ipairs(names) do
  local fields = redis.call('HGETALL', key('schedule', name))
  if #fields > 0 then
    out[#out + 1] = name
    out[#out + 1] = fields
  end
end
return out
