#!lua flags=no-writes
-- stats: counts of one queue's items per status, plus claimed items whose lease has expired.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us ('' = TIME), queue
-- Reply: {queued, claimed, done, dead, cancelled, expired}; zeros for an unknown queue.
local now = clock()
local queue = ARGV[3]
if queue == nil or queue == '' then bad('queue is missing') end
return {
  redis.call('ZCARD', key('ids', 'queued:' .. queue)),  -- every group's ready, and delayed
  redis.call('ZCARD', key('claimed', queue)),
  redis.call('ZCARD', key('done', queue)),
  redis.call('ZCARD', key('dead', queue)),
  redis.call('ZCARD', key('cancelled', queue)),
  redis.call('ZCOUNT', key('claimed', queue), '-inf', int(now)),
}
