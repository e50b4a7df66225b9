-- Helpers shared by every script: queue/scripts.rs prepends this file to each one, so the
-- rules for "ready", "cancelled" and "expire when finished" are written once.
-- Job keys are built from ARGV base ("{prefix}:"), whose hash tag keeps every key in one slot.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function job_key(base, id)
  return base .. 'job:' .. id
end

-- A finished job expires after its retention, or later while its idempotency key still lives,
-- so a repeated request within the key's lifetime can still be answered with the job.
local function expire_finished(base, jk, retention_ms)
  local ttl = tonumber(retention_ms)
  local idem = redis.call('HGET', jk, 'idem_key')
  if idem then
    local idem_ttl = redis.call('PTTL', base .. 'idem:' .. idem)
    if idem_ttl > ttl then ttl = idem_ttl end
  end
  if ttl < 1 then ttl = 1 end
  redis.call('PEXPIRE', jk, ttl)
end

-- Makes a job ready to run. front = true puts it where the next fetch takes it (a job that was
-- interrupted goes first); otherwise it waits behind the others.
local function make_ready(base, jk, id, front, now)
  local q = redis.call('HGET', jk, 'queue')
  redis.call('HSET', jk, 'status', 'queued', 'enqueued_at', now)
  redis.call('HDEL', jk, 'lease', 'owner')
  if front then
    redis.call('RPUSH', base .. 'queue:' .. q, id)
  else
    redis.call('LPUSH', base .. 'queue:' .. q, id)
  end
  redis.call('PUBLISH', base .. 'wake', q)
end

local function finish_cancelled(base, jk, now, retention_ms)
  redis.call('HSET', jk, 'status', 'cancelled', 'finished_at', now)
  redis.call('HDEL', jk, 'lease', 'owner')
  expire_finished(base, jk, retention_ms)
end
