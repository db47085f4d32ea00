#!lua
-- fire_schedule: enqueue a schedule's item for one slot, exactly once: only while
-- schedule:<name> exists, is enabled, still has the version the scheduler read, and the slot
-- is after both its set_at and its last_slot. Then the item is stored as enqueue stores it
-- (_enqueue.lua: dedupe key, history, groups, wake-up) and the slot and item are recorded.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us ('' = TIME), name, version, slot_us, then the item's eight values as
--       enqueue's (payload, priority, run_at_us, delay_us, max_attempts, dedupe_key, history,
--       group)
-- Reply: the new item's id, or nil when the slot was refused (nothing written).
--@include _enqueue.lua
local now = clock()
local name = ARGV[3]
local version = arg_int(4, 'version', 1, MAX_SAFE)
local slot = arg_int(5, 'slot', -MAX_SAFE, MAX_SAFE)
if #ARGV ~= 13 then bad('expected 8 values for the item') end
local item = item_arg(5, now)  -- validated before anything is written
local sk = key('schedule', name)
local s = redis.call('HMGET', sk, 'queue', 'enabled', 'version', 'set_at', 'last_slot')
if not s[1] or s[2] ~= '1' or tonumber(s[3]) ~= version or slot <= tonumber(s[4])
    or (s[5] and slot <= tonumber(s[5])) then
  return false
end
local id = enqueue_items(s[1], {item}, now)[1]
redis.call('HSET', sk, 'last_slot', int(slot), 'last_item_id', int(id), 'updated_at', int(now))
return id
