-- SET NX that a retry can recognise: sets KEYS[1] to ARGV[1] with a ttl of ARGV[2] ms unless
-- it exists. Returns 1 when set by this value (now, or by a retry of this same write whose
-- reply was lost), 0 when someone else's value holds it.
local old = redis.call('GET', KEYS[1])
if not old then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if old == ARGV[1] then
  return 1
end
return 0
