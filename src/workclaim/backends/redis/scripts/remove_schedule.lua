#!lua
-- remove_schedule: delete schedule:<name> and its entry in schedules (the items it enqueued
-- stay); publishes a wake-up when it existed.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us (unused), name
-- Reply: 1 if the schedule existed, else 0.
local name = ARGV[3]
local removed = redis.call('DEL', key('schedule', name))
redis.call('ZREM', key('schedules'), name)
if removed == 1 then wake() end
return removed
