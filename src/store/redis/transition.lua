-- Compare-and-set of one intent: check version and state, write, move the deadline and the
-- list index entries, audit, publish; all or nothing.
-- KEYS: 1 intent hash, 2 deadline zset, 3 audit stream, 4 the next state's index zset,
--       5 the agent's index zset for the next state, then for each state that may become the
--       next state (in ARGV[16..] order) its index zset and the agent's (one hash tag).
-- ARGV: 1 next json, 2 id, 3 next version, 4 next state, 5 next deadline ms or '',
--       6 event json, 7 pub/sub channel, 8 audit record json, 9 rejected-attempt record json,
--       10 the states that may become the next state, as ",A,B,", 11 a token naming this write,
--       12 the record's ttl in ms once decided, or '', 13 the oldest audit entry id (ms) kept,
--       14 the retention in ms, 15 the smallest id still within retention,
--       16.. the states that may become the next state, in KEYS order.
-- Returns {1} when written (or when this very write already landed: a retry converges; an
-- identical decision by someone else still loses),
-- {0, current json} when the compare-and-set lost, {-1} when the intent does not exist.
local cur = redis.call('HMGET', KEYS[1], 'v', 's', 'j', 'w')
if not cur[1] then
  return {-1}
end
local have = tonumber(cur[1])
local want = tonumber(ARGV[3])
if have == want and cur[4] == ARGV[11] then
  return {1}
end
-- Past its deadline (by Redis's clock) a pending intent can only expire: a late decision loses
-- even when the replica deciding it has not noticed the deadline yet.
local overdue = false
if cur[2] == 'PENDING_APPROVAL' and ARGV[4] ~= 'EXPIRED' then
  local deadline = redis.call('ZSCORE', KEYS[2], ARGV[2])
  if deadline then
    local t = redis.call('TIME')
    overdue = tonumber(deadline) <= tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
end
if overdue or have + 1 ~= want or not string.find(ARGV[10], ',' .. cur[2] .. ',', 1, true) then
  local rejected = cjson.decode(ARGV[9])
  rejected['detail'] = rejected['detail'] .. ', found ' .. cur[2] .. ' at version ' .. cur[1]
  redis.call('XADD', KEYS[3], '*', 'r', cjson.encode(rejected))
  return {0, cur[3]}
end
redis.call('HSET', KEYS[1], 'j', ARGV[1], 'v', ARGV[3], 's', ARGV[4], 'w', ARGV[11])
if ARGV[12] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[12])
end
redis.call('ZREM', KEYS[2], ARGV[2])
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[2])
end
for i = 16, #ARGV do
  if ARGV[i] == cur[2] then
    local k = 6 + 2 * (i - 16)
    redis.call('ZREM', KEYS[k], ARGV[2])
    redis.call('ZREM', KEYS[k + 1], ARGV[2])
  end
end
redis.call('ZADD', KEYS[4], 0, ARGV[2])
redis.call('ZADD', KEYS[5], 0, ARGV[2])
if ARGV[12] ~= '' then
  -- Decided sets are trimmed to retention as they grow.
  trim(KEYS[4], ARGV[15])
  trim_agent_decided(KEYS[5], ARGV[15], ARGV[14])
end
redis.call('XADD', KEYS[3], 'MINID', '~', ARGV[13], '*', 'r', ARGV[8])
redis.call('PUBLISH', ARGV[7], ARGV[6])
return {1}
