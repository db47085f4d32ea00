#!lua flags=no-writes
-- get: one item's stored fields.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us (unused), id
-- Reply: the item hash as a flat field/value array; empty when there is no such item.
local id = arg_int(3, 'id', 1, MAX_SAFE)
return redis.call('HGETALL', key('item', int(id)))
