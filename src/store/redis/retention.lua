-- Retention helpers, prepended to the create and transition scripts (scripts.rs).

-- Drops a list index's entries older than `min_id`, the smallest id still within retention.
local function trim(key, min_id)
  redis.call('ZREMRANGEBYLEX', key, '-', '(' .. min_id)
end

-- An agent's decided set is trimmed when it grows (open sets lose entries by transition) and
-- lives as long as its newest entry's record: an agent that stops submitting leaves nothing
-- behind.
local function trim_agent_decided(key, min_id, retention_ms)
  trim(key, min_id)
  redis.call('PEXPIRE', key, retention_ms)
end

