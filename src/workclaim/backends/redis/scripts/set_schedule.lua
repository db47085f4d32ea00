#!lua
-- set_schedule: create or replace the schedule hash schedule:<name> (and its name in the index
-- schedules). Different settings (or none stored) bump the version and set set_at = now, keeping
-- last_slot and last_item_id; identical settings change nothing. A change publishes a wake-up
-- (schedulers pass again).
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us ('' = TIME), name, then the nine settings as stored: queue, cron,
--       timezone, payload (JSON text), priority, max_attempts ('' = the queue's default),
--       group ('' = the default group), catch_up, enabled ('1' / '0')
-- Reply: {changed (1 / 0), the stored hash as a flat field/value array}.
local now = clock()
local name = ARGV[3]
if name == nil or name == '' then bad('schedule name is missing') end
if #ARGV ~= 12 then bad('expected nine settings') end
local FIELDS = {'queue', 'cron', 'timezone', 'payload', 'priority', 'max_attempts', 'group',
  'catch_up', 'enabled'}
local sk = key('schedule', name)
local stored = redis.call('HMGET', sk, 'version', unpack(FIELDS))
local changed = stored[1] == false
local fields = {}
for i, field in ipairs(FIELDS) do
  if stored[i + 1] ~= ARGV[3 + i] then changed = true end
  fields[#fields + 1] = field
  fields[#fields + 1] = ARGV[3 + i]
end
if changed then
  local version = (tonumber(stored[1]) or 0) + 1
  redis.call('HSET', sk, 'version', int(version), 'set_at', int(now), 'updated_at', int(now),
    unpack(fields))
  if version == 1 then redis.call('HSET', sk, 'created_at', int(now)) end
  redis.call('ZADD', key('schedules'), 0, name)
  wake()
end
return {changed and 1 or 0, redis.call('HGETALL', sk)}
