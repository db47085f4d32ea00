#!lua
-- enqueue: store items as queued (all or none); a held dedupe key gives the live item's id.
-- KEYS: none (keys derive from the prefix, see keys.py; one primary, no cluster slots).
-- ARGV: prefix, now_us ('' = TIME), queue, count, then per item eight values:
--       payload, priority, run_at_us ('' = now + delay_us), delay_us, max_attempts,
--       dedupe_key ('' = none), history ('1' = keep the attempt history, '0' = none),
--       group ('' = the queue's default group; a named one is stored as the item's `group`)
-- Reply: the ids, in input order (each new item's id is also in ids:queued:<queue>). Publishes one wake-up when it created an item.
--@include _enqueue.lua
local now = clock()
local queue = ARGV[3]
local count = arg_int(4, 'count', 0, MAX_SAFE)
if queue == nil or queue == '' then bad('queue is missing') end
if #ARGV ~= 4 + 8 * count then bad('expected 8 values per item') end

-- Validate everything before the first write.
local items = {}
for i = 1, count do
  items[i] = item_arg(4 + 8 * (i - 1), now)
end
return enqueue_items(queue, items, now)
