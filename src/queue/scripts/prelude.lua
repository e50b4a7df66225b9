-- Helpers shared by every script: queue/scripts.rs prepends this file to each one, so the
-- rules for "ready", "cancelled" and "expire when finished" are written once.
-- Key names are spelled here once, built from ARGV base ("{prefix}:"): its hash tag keeps every
-- key in one slot, so a script may touch keys it was not passed. Rust spells the same names in
-- queue/keys.rs.
--
-- A script that raises an error keeps the writes it made before it: Redis does not roll back.
-- So every script reads and checks what it needs (numbers parsed, fields present) before its
-- first write, and the helpers below that write take only values already checked.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function job_key(base, id) return base .. 'job:' .. id end
local function queue_key(base, name) return base .. 'queue:' .. name end
local function inflight_key(base, process) return base .. 'inflight:' .. process end
local function heartbeat_key(base, process) return base .. 'process:' .. process end
local function idem_key(base, key) return base .. 'idem:' .. key end
local function finished_key(base) return base .. 'finished' end
-- Succeeded (or cancelled) ids by finish time, so each status lists without scanning the other.
local function done_key(base, status) return base .. 'done:' .. status end
-- Attempts finished in one minute (processed, failed), for GET /stats/minutes.
local function minute_key(base, minute) return base .. 'minute:' .. minute end
local function queues_key(base) return base .. 'queues' end
local function wake_channel(base) return base .. 'wake' end
local function cancel_channel(base) return base .. 'cancel' end
-- The job hash's field for its n-th error entry.
local function err_field(n) return 'err:' .. n end

-- Whether the job was cancelled through the API (it may still be running).
local function is_cancelled(jk)
  return redis.call('HGET', jk, 'cancel') == '1'
end

-- Whether the job is held under this lease: a worker's writes are void without it.
local function holds_lease(jk, lease)
  return redis.call('HGET', jk, 'lease') == lease
end

-- A finished job expires after its retention, or later while its idempotency key still lives,
-- so a repeated request within the key's lifetime can still be answered with the job.
local function expire_finished(base, jk, retention_ms)
  local ttl = retention_ms
  local idem = redis.call('HGET', jk, 'idem_key')
  if idem then
    local idem_ttl = redis.call('PTTL', idem_key(base, idem))
    if idem_ttl > ttl then ttl = idem_ttl end
  end
  if ttl < 1 then ttl = 1 end
  redis.call('PEXPIRE', jk, ttl)
end

-- Succeeded and cancelled jobs are listed newest first in 'finished', which keeps at most
-- keep_max ids: the records of the ids it pushes out are deleted now, so finished jobs are bounded
-- by count (JOB_RETENTION_MAX) as well as by age. A retried job leaves the list (retry.lua);
-- should an id still stand there for a job that runs or waits again, it is dropped from the
-- list without touching the job.
-- The list itself expires a retention after the last push: by then every record it names has.
local function index_finished(base, id, keep)
  local fk, keep_max = finished_key(base), keep[2]
  redis.call('LPUSH', fk, id)
  redis.call('PEXPIRE', fk, keep[1])
  -- The per-status index: within the same count bound (ids leave it with the list) and age bound.
  local f = redis.call('HMGET', job_key(base, id), 'status', 'finished_at')
  if f[1] == 'succeeded' or f[1] == 'cancelled' then
    local dk, at = done_key(base, f[1]), tonumber(f[2]) or 0
    redis.call('ZADD', dk, at, id)
    redis.call('PEXPIRE', dk, keep[1])
    redis.call('ZREMRANGEBYSCORE', dk, '-inf', at - keep[1])
  end
  local excess = redis.call('LLEN', fk) - keep_max
  while excess > 0 do
    local old = redis.call('RPOP', fk)
    local ojk = job_key(base, old)
    redis.call('ZREM', done_key(base, 'succeeded'), old)
    redis.call('ZREM', done_key(base, 'cancelled'), old)
    local status = redis.call('HGET', ojk, 'status')
    if (status == 'succeeded' or status == 'cancelled') and redis.call('HEXISTS', ojk, 'lease') == 0 then
      redis.call('DEL', ojk)
    end
    excess = excess - 1
  end
end

-- Counts one finished attempt (and whether it failed) in its minute's hash, which expires after
-- an hour and a little: the last hour of counts is all GET /stats/minutes shows.
local function count_minute(base, now, failed)
  local mk = minute_key(base, math.floor(now / 60000))
  -- The first count of a minute creates its hash, and sets its lifetime once.
  if redis.call('HINCRBY', mk, 'processed', 1) == 1 then redis.call('PEXPIRE', mk, 3900000) end
  if failed then redis.call('HINCRBY', mk, 'failed', 1) end
end

-- Makes a job ready to run. front = true puts it where the next fetch takes it (a job that was
-- interrupted goes first); otherwise it waits behind the others. q is the job's queue, read by
-- the caller before its first write.
local function make_ready(base, jk, id, q, front, now)
  redis.call('HSET', jk, 'status', 'queued', 'enqueued_at', now)
  redis.call('HDEL', jk, 'lease', 'owner')
  if front then
    redis.call('RPUSH', queue_key(base, q), id)
  else
    redis.call('LPUSH', queue_key(base, q), id)
  end
  -- Listed again in case the queue's name was pruned while the job waited elsewhere.
  redis.call('SADD', queues_key(base), q)
  redis.call('PUBLISH', wake_channel(base), q)
end

-- Queues a dead or cancelled job again with a fresh budget of failed attempts; its errors and
-- checkpoint stay. The caller has taken it out of the dead set or the finished list.
local function ready_again(base, jk, id, q, now)
  redis.call('PERSIST', jk)
  redis.call('HSET', jk, 'failures', 0)
  redis.call('HDEL', jk, 'cancel', 'finished_at', 'result')
  make_ready(base, jk, id, q, false, now)
end

-- keep: {retention ms, most finished jobs kept}, parsed by the caller.
local function finish_cancelled(base, jk, id, now, keep)
  redis.call('HSET', jk, 'status', 'cancelled', 'finished_at', now)
  redis.call('HDEL', jk, 'lease', 'owner')
  expire_finished(base, jk, keep[1])
  index_finished(base, id, keep)
end

-- Parses the two retention arguments every script that may finish a job takes; called on a
-- script's first lines, so a bad argument fails it before it writes anything.
local function parse_keep(retention_ms, keep_max)
  local keep = {tonumber(retention_ms), tonumber(keep_max)}
  if not keep[1] or not keep[2] or keep[2] < 1 then error('bad retention arguments') end
  return keep
end
