#!lua
-- cancel: queued -> cancelled, freeing the item's dedupe key.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us ('' = TIME), id
-- Reply: {1} cancelled; {0} no such item; {3, status} the item is not queued (unchanged).
local now = clock()
local id = arg_int(3, 'id', 1, MAX_SAFE)
local ik = key('item', int(id))
local f = redis.call('HMGET', ik, 'status', 'queue', 'run_at', 'dedupe_key', 'attempts',
  'history', 'group')
if not f[1] then return {0} end
if f[1] ~= 'queued' then return {3, f[1]} end
unplace(id, f[2], tonumber(f[3]), f[7] or '')
redis.call('HSET', ik, 'status', 'cancelled', 'finished_at', int(now), 'updated_at', int(now))
finish(id, f[2], 'cancelled', f[4] or nil, now)
move(int(id), f[2], 'queued', 'cancelled')
note(int(id), f[6], 'cancelled', now, tonumber(f[5]), 'cancelled')
return {1}
