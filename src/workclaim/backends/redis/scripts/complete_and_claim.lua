#!lua
-- complete_and_claim: complete each finished lease (fenced like complete), then claim exactly
-- like claim.lua (reap, promote, lease up to `limit`; 0 = complete only). One round trip.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us ('' = TIME), worker, lease_us, limit, reap_limit, promote_limit,
--       queue count, queue names..., done count, then per done lease four values:
--       id, token, worker ('' = the claiming worker), result ('' = none; JSON is never empty)
-- A completion that frees a slot of a limited queue publishes a wake-up.
-- Reply: {flags, leases}: flags one character per done lease in order ('1' done now or a
--        repeat of the complete that ended it, '0' lost: unchanged); leases as claim's reply.
--@include _claim.lua
--@include _flow.lua
local now = clock()
local a, base = claim_args(3, 0)
local nd = arg_int(base, 'done count', 0, 100000)
if #ARGV ~= base + 4 * nd then bad('expected 4 values per done lease') end
local done = {}
for i = 1, nd do
  local at = base + 4 * (i - 1)
  local worker = ARGV[at + 3]
  done[i] = {arg_int(at + 1, 'id', 1, MAX_SAFE), arg_int(at + 2, 'token', 1, MAX_SAFE),
    worker ~= '' and worker or a.worker, ARGV[at + 4]}
end
local flags = {}
local woke = false
for i, d in ipairs(done) do
  local lease = fence_lease(d[1], d[2], d[3], now)
  if lease then
    complete_lease(lease, d[4], now)
    if lease.flow and not woke then  -- a slot of a limited queue is free
      wake()
      woke = true
    end
    flags[i] = '1'
  else
    flags[i] = repeat_of(int(d[1]), d[2], 'complete')[1] == 2 and '1' or '0'
  end
end
return {table.concat(flags), claim_items(now, a)}
