#!lua
-- set_paused: pause or resume a queue (the paused field of policy:<queue>; a claim reads it in
-- its own script, so no claim that starts after this returns takes an item of a paused queue).
-- Resuming publishes a wake-up.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us (unused), queue, paused ('1' pause, '0' resume)
-- Reply: the stored policy as policy.lua's.
local queue = ARGV[3]
if queue == nil or queue == '' then bad('queue is missing') end
local pk = key('policy', queue)
if ARGV[4] == '1' then
  redis.call('HSET', pk, 'paused', '1')
elseif ARGV[4] == '0' then
  redis.call('HDEL', pk, 'paused')  -- the last field gone: no hash, nothing to check
  wake()
else
  bad('paused must be 1 or 0')
end
return redis.call('HGETALL', pk)
