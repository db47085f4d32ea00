#!lua flags=no-writes
-- history: a page of one item's attempt history, oldest first, or newest first.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us (unused), id, start (0: the first event), limit, newest ('1': count
--       positions from the newest event and reply newest first)
-- Reply: {} when there is no such item; else {1, event...}, each event the text
--        kind|at_us|attempt|status|token|worker|error ('' for none) as written by note().
local id = arg_int(3, 'id', 1, MAX_SAFE)
local start = arg_int(4, 'start', 0, MAX_SAFE)
local limit = arg_int(5, 'limit', 1, 100000)
local sid = int(id)
if redis.call('EXISTS', key('item', sid)) == 0 then return {} end
local out = {1}
if ARGV[6] == '1' then
  local events = redis.call('LRANGE', key('history', sid), -start - limit, -start - 1)
  for i = #events, 1, -1 do out[#out + 1] = events[i] end
else
  for _, event in ipairs(redis.call('LRANGE', key('history', sid), start, start + limit - 1)) do
    out[#out + 1] = event
  end
end
return out
