-- One agent's submission budget: a token bucket in one hash, on Redis's own clock so that
-- replicas with skewed clocks agree. KEYS[1] the bucket; ARGV[1] tokens per second (also the
-- burst). Takes one token and returns 0, or takes none and returns the milliseconds until one
-- is available. The hash expires once a full bucket would have refilled, so idle agents cost
-- nothing.
local rate = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = rate
  at = now
end
-- A clock that stepped back refills nothing; it never takes tokens away either.
if now > at then
  tokens = math.min(rate, tokens + (now - at) * rate / 1000)
  at = now
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
  if wait < 1 then wait = 1 end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.ceil(1000 + (rate - tokens) * 1000 / rate))
return wait
