#!lua flags=no-writes
-- history: one item's attempt history, oldest first.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us (unused), id
-- Reply: {} when there is no such item; else {1, event...}, each event the text
--        kind|at_us|attempt|status|token|worker|error ('' for none) as written by note().
local id = arg_int(3, 'id', 1, MAX_SAFE)
local sid = int(id)
if redis.call('EXISTS', key('item', sid)) == 0 then return {} end
local events = redis.call('LRANGE', key('history', sid), 0, -1)
table.insert(events, 1, 1)
return events
