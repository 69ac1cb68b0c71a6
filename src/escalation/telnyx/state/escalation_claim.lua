-- Takes or renews an escalation claim and keeps the bucket's claim index in step, so that
-- a claim nobody renews can be found (and taken over) by another replica.
-- KEYS: 1 the claim, 2 the bucket's claim index (a sorted set scored by expiry ms).
-- ARGV: 1 owner (replica token), 2 ttl ms, 3 intent id, 4 expiry ms, 5 "claim" | "renew".
-- claim: only when no live claim exists (not even the owner's own), so exactly one caller
-- takes an expired claim. renew: only the live claim's owner.
-- Returns 1 when the claim is now the owner's, 0 otherwise.
local holder = redis.call('GET', KEYS[1])
if ARGV[5] == 'claim' then
  if holder then
    return 0
  end
elseif holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
return 1
