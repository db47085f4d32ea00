#!lua
-- migrate: stamp the key layout's version under the prefix unless one is there already.
-- KEYS: none (keys derive from the prefix, see keys.py).
-- ARGV: prefix, now_us (unused), version
-- Reply: the version stored now (greater than ARGV[3] when a newer workclaim wrote it).
local version = arg_int(3, 'version', 1, 1000000)
local current = tonumber(redis.call('GET', key('schema')) or '0')
if current < version then
  redis.call('SET', key('schema'), int(version))
  current = version
end
return current
