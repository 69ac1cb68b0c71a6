-- Takes or renews an escalation claim and keeps the bucket's claim index in step, so that
-- a claim nobody renews can be found (and taken over) by another replica.
-- KEYS: 1 the claim, 2 the bucket's claim index (a sorted set scored by expiry ms).
-- ARGV: 1 owner (replica token), 2 ttl ms, 3 intent id, 4 "claim" | "renew".
-- The index is scored by Redis's own clock, the one that expires the claim key: a claim
-- listed as lapsed has really expired, however long the call took to arrive.
-- claim: only when no live claim exists (not even the owner's own), so exactly one caller
-- takes an expired claim. renew: only the live claim's owner.
-- Returns 1 when the claim is now the owner's, 0 otherwise.
local holder = redis.call('GET', KEYS[1])
if ARGV[4] == 'claim' then
  if holder then
    return 0
  end
elseif holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local now = redis.call('TIME')
local expiry = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], expiry, ARGV[3])
return 1
