-- Compare-and-set of an escalation ladder: version 1 only when none exists, version n only
-- over version n - 1. A retry of a write that already landed (same token) converges; another
-- replica's identical ladder still loses, so only one replica acts on a step.
-- KEYS: 1 the ladder hash. ARGV: 1 ladder json, 2 its version, 3 ttl ms, 4 write token.
-- Returns 1 when stored, 0 when the race was lost.
local cur = redis.call('HMGET', KEYS[1], 'v', 'w')
local want = tonumber(ARGV[2])
if cur[1] then
  local have = tonumber(cur[1])
  if have == want and cur[2] == ARGV[4] then
    return 1
  end
  if have + 1 ~= want then
    return 0
  end
elseif want ~= 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'j', ARGV[1], 'w', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
