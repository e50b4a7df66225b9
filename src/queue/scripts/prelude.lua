-- Helpers shared by every script, so the rules for "ready", "cancelled" and "expire when
-- finished" are written once. queue/scripts.rs prepends to each script the definitions of this
-- file it uses (directly or through another), in this file's order: a script runs its whole text
-- at every call, and each function defined is a closure made anew and left to the garbage
-- collector. Each definition starts a line with `local function NAME` or `local NAME =`, with
-- its comment directly above it; this header belongs to none.
-- Key names are spelled here once, built from ARGV base, the base of one shard ("{prefix:sXXX}:",
-- or "{prefix}:" for the legacy shard): its hash tag keeps the shard's keys in one slot, so a
-- script may touch any key of its shard it was not passed, and never one of another shard. Rust
-- spells the same names in queue/keys.rs.
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
-- Idempotency keys are scoped to the job's queue (its shard holds them with the job).
local function idem_key(base, queue, key) return base .. 'idem:' .. queue .. ':' .. key end
local function finished_key(base) return base .. 'finished' end
-- Cancelled ids by finish time, so they list without a scan of the succeeded ones. Succeeded
-- jobs list from 'finished' itself (nearly all of it): a second index of them would cost about
-- 145 B per finished job.
local function done_key(base, status) return base .. 'done:' .. status end
-- Attempts finished in one minute (processed, failed), for GET /stats/minutes.
local function minute_key(base, minute) return base .. 'minute:' .. minute end
local function queues_key(base) return base .. 'queues' end
-- Pub/sub channels are the deployment's, whatever the shard: "{prefix}:" from "{prefix:sXXX}:".
-- (A channel is not a key: publishing to it from any slot is allowed.)
local function global_base(base)
  local head = string.match(base, '^(.*):s%x%x%x}:$')
  if head then return head .. '}:' end
  return base
end
local function wake_channel(base) return global_base(base) .. 'wake' end
local function cancel_channel(base) return global_base(base) .. 'cancel' end
-- The job hash's field for its n-th error entry.
local function err_field(n) return 'err:' .. n end

-- The ms since the epoch that a job id made by the app carries in its first 48 bits (see
-- queue/ids.rs), or nil for an id that is not hex there. Two substrings and no pattern: enqueue
-- calls it for every job (a pattern check cost bulk enqueue about 15%). tonumber would also take
-- a sign, spaces or '0x', which ids::millis_of refuses; the scripts only ever see ids the app
-- made (ids::new_job_id), which are plain hex there.
local function id_ms(id)
  if string.byte(id, 9) ~= 45 then return nil end
  local high, low = tonumber(string.sub(id, 1, 8), 16), tonumber(string.sub(id, 10, 13), 16)
  if not (high and low) then return nil end
  return high * 65536 + low
end

-- A whole number as the text Redis is to store or return. Passed as a number, redis.call formats
-- it with %.17g on Redis 7.0 (joined to a string, Lua uses %.14g), glibc's slow float path: about
-- 4% of Redis's time in a drain.
local function int_text(n) return string.format('%d', n) end

-- A new record's creation time (Redis's clock, now) as a field and value: 'C', its offset from
-- the time the id carries (a few ms, so a small integer: 2-3 B in the hash instead of 10), or
-- 'c' itself for an id that carries none. Readers add the two (queue/job.rs, summaries.lua).
-- The value is a number; callers send it as int_text.
local function created_field(id, now)
  local carried = id_ms(id)
  if carried then return 'C', now - carried end
  return 'c', now
end

-- The job hash's hot fields have one-letter names (a hash of short fields stays a small
-- listpack: about half the bytes per job). queue/job.rs reads both spellings.
--   k kind  q queue  a args  s status  n attempts  x failures  m max_attempts  T timeout_ms
--   c created_at (or C, see created_field)  r run_at  e enqueued_at  t started_at
--   f finished_at (or d, a succeeded job's duration: finished_at is t + d)  L lease  o owner
--   R result
-- Records written before the short names are renamed in place the first time a script touches
-- them (their TTL is kept); their 'id' field goes, since the key names the job. Returns whether
-- it renamed anything.
local function upgrade(jk)
  if redis.call('HEXISTS', jk, 'status') == 0 then return false end
  -- Built here, only for the rare old record: not at every call of every script.
  local LONG_NAMES = {kind = 'k', queue = 'q', args = 'a', status = 's', attempts = 'n',
    failures = 'x', max_attempts = 'm', timeout_ms = 'T', created_at = 'c', run_at = 'r',
    enqueued_at = 'e', started_at = 't', finished_at = 'f', lease = 'L', owner = 'o', result = 'R'}
  local all = redis.call('HGETALL', jk)
  local renamed, old = {}, {'id'}
  for i = 1, #all, 2 do
    local short = LONG_NAMES[all[i]]
    if short then
      renamed[#renamed + 1] = short
      renamed[#renamed + 1] = all[i + 1]
      old[#old + 1] = all[i]
    end
  end
  redis.call('HSET', jk, unpack(renamed))
  redis.call('HDEL', jk, unpack(old))
  return true
end

-- The id of the job whose hash is jk.
local function id_of(base, jk) return string.sub(jk, #base + 5) end

-- The job hash of id, in the current field names.
local function job_hash(base, id)
  local jk = job_key(base, id)
  upgrade(jk)
  return jk
end

-- The record as the API reads it: the hash's fields, and its id (which the key holds).
local function record(jk, id)
  local fields = redis.call('HGETALL', jk)
  fields[#fields + 1] = 'id'
  fields[#fields + 1] = id
  return fields
end

-- Whether the job was cancelled through the API (it may still be running).
local function is_cancelled(jk)
  return redis.call('HGET', jk, 'cancel') == '1'
end

-- Whether the job is held under this lease: a worker's writes are void without it.
local function holds_lease(jk, lease)
  return redis.call('HGET', jk, 'L') == lease
end

-- Makes jk expire after ms, or later while its idempotency key still lives, so a repeated request
-- within the key's lifetime can still be answered with the job. idem and q: the job's 'idem_key'
-- and 'q' fields, as its caller read them.
local function expire_as(base, jk, ms, idem, q)
  local ttl = ms
  if idem and q then
    local idem_ttl = redis.call('PTTL', idem_key(base, q, idem))
    if idem_ttl > ttl then ttl = idem_ttl end
  end
  if ttl < 1 then ttl = 1 end
  redis.call('PEXPIRE', jk, ttl)
end

-- A dead job expires after the dead retention (the dead set's entries go in promote.lua).
local function expire_dead(base, jk, dead_ms)
  local idem = redis.call('HMGET', jk, 'idem_key', 'q')
  expire_as(base, jk, dead_ms, idem[1], idem[2])
end

-- A succeeded or cancelled job has no TTL of its own: prune_finished deletes it by age from the
-- tail of 'finished', and index_finished_many by count. A TTL would cost about 40 B per job in
-- Redis's table of expiring keys, and a call per job. One with an idempotency key is the
-- exception: it expires with its key (or after its retention, if later), and pruning leaves it
-- to that, so a repeated request is answered with it while the key lives.
local function expire_finished_as(base, jk, retention_ms, idem, q)
  if idem and q then expire_as(base, jk, retention_ms, idem, q) end
end

local function expire_finished(base, jk, retention_ms)
  local idem = redis.call('HMGET', jk, 'idem_key', 'q')
  expire_finished_as(base, jk, retention_ms, idem[1], idem[2])
end

-- Succeeded and cancelled jobs are listed newest first in 'finished', which keeps at most
-- keep_max ids: the records of the ids it pushes out are deleted now, so finished jobs are bounded
-- by count (JOB_RETENTION_MAX) as well as by age. A retried job leaves the list (retry.lua);
-- should an id still stand there for a job that runs or waits again, it is dropped from the
-- list without touching the job.
-- The list has no TTL: it names records that have none, and prune_finished empties it by age.
-- ids: jobs just finished, oldest first; cancelled: {id, finished_at} of those among them that
-- were cancelled. One LPUSH, one RPOP and one ZREM for all of them, whatever their number.
local function index_finished_many(base, ids, cancelled, keep)
  local fk, keep_max = finished_key(base), keep[2]
  local len = redis.call('LPUSH', fk, unpack(ids))
  -- The cancelled index: within the same count bound (ids leave it with the list) and age bound.
  if #cancelled > 0 then
    local dk = done_key(base, 'cancelled')
    for _, c in ipairs(cancelled) do
      redis.call('ZADD', dk, c[2], c[1])
      redis.call('ZREMRANGEBYSCORE', dk, '-inf', c[2] - keep[1])
    end
    redis.call('PEXPIRE', dk, keep[1])
  end
  -- At most 1000 a call (unpack's bound): a list over its bound after JOB_RETENTION_MAX was
  -- lowered shrinks by that much at every finish.
  local excess = math.min(len - keep_max, 1000)
  if excess < 1 then return end
  local olds = redis.call('RPOP', fk, excess)
  redis.call('ZREM', done_key(base, 'cancelled'), unpack(olds))
  local doomed = {}
  for _, old in ipairs(olds) do
    local ojk = job_key(base, old)
    -- Long field names too: a record written before the short names is deleted as it stands
    -- (read only for a record without 's', which is old or gone).
    local h = redis.call('HMGET', ojk, 's', 'L')
    if not h[1] then h = redis.call('HMGET', ojk, 'status', 'lease') end
    local status, held = h[1], h[2]
    if (status == 'succeeded' or status == 'cancelled') and not held then
      doomed[#doomed + 1] = ojk
    end
  end
  -- One DEL for all: past JOB_RETENTION_MAX every ack pushes a record out.
  if #doomed > 0 then redis.call('DEL', unpack(doomed)) end
end

-- index_finished_many for one job, finished by another script (cancel, fail).
local function index_finished(base, id, keep)
  local f = redis.call('HMGET', job_key(base, id), 's', 'f')
  local cancelled = {}
  if f[1] == 'cancelled' then cancelled[1] = {id, tonumber(f[2]) or 0} end
  index_finished_many(base, {id}, cancelled, keep)
end

-- Deletes the succeeded and cancelled jobs that finished retention_ms or longer ago: they stand
-- at the tail of 'finished' (oldest last), so this reads from the tail and stops at the first
-- younger one, taking at most `most` ids off the list. A record that is gone, runs again or has
-- an idempotency key (it expires with its key) only leaves the list. Returns how many left it.
local function prune_finished(base, now, retention_ms, most)
  local fk = finished_key(base)
  local cutoff = now - retention_ms
  -- Releases before this one gave the list a TTL (and keep doing so while they still run during
  -- a deploy): should it expire, the records it names, which have none, could never be found
  -- again. This runs about twice a second in every process.
  redis.call('PERSIST', fk)
  local gone = 0
  while gone < most do
    local tail = redis.call('LRANGE', fk, -math.min(100, most - gone), -1)
    local old, doomed = 0, {}
    for i = #tail, 1, -1 do
      local jk = job_key(base, tail[i])
      local h = redis.call('HMGET', jk, 'f', 's', 'L', 'idem_key', 'finished_at', 'status', 'lease',
        't', 'd')
      local finished_at = tonumber(h[1] or h[5])
      if not finished_at and h[8] and h[9] then finished_at = tonumber(h[8]) + tonumber(h[9]) end
      if finished_at and finished_at > cutoff then break end
      old = old + 1
      local status, held = h[2] or h[6], h[3] or h[7]
      if (status == 'succeeded' or status == 'cancelled') and not held and not h[4] then
        doomed[#doomed + 1] = jk
      end
    end
    if old > 0 then redis.call('RPOP', fk, old) end
    if #doomed > 0 then redis.call('DEL', unpack(doomed)) end
    gone = gone + old
    if old < #tail or #tail == 0 then break end
  end
  if gone > 0 then
    redis.call('ZREMRANGEBYSCORE', done_key(base, 'cancelled'), '-inf', cutoff)
  end
  return gone
end

-- Counts finished attempts (n of them, failed of which failed) in their minute's hash, which
-- expires after an hour and a little: the last hour of counts is all GET /stats/minutes shows.
local function count_minutes(base, now, n, failed)
  local mk = minute_key(base, math.floor(now / 60000))
  -- The first count of a minute creates its hash, and sets its lifetime once.
  if redis.call('HINCRBY', mk, 'processed', n) == n then redis.call('PEXPIRE', mk, 3900000) end
  if failed > 0 then redis.call('HINCRBY', mk, 'failed', failed) end
end

-- Counts one finished attempt, and whether it failed.
local function count_minute(base, now, failed)
  local f = 0
  if failed then f = 1 end
  count_minutes(base, now, 1, f)
end

-- Tells idle workers that queue q has a job, when the push made its list len long. Only a push
-- into an empty list wakes anyone: a worker goes idle only after finding every list it works
-- empty, so the first push after that is the one that wakes it, and one that finds jobs already
-- waiting has a worker fetching them already (or woken by an earlier push). No PUBLISH per job
-- while workers are busy.
local function wake(base, q, len)
  if len == 1 then redis.call('PUBLISH', wake_channel(base), q) end
end

-- Makes a job ready to run. front = true puts it where the next fetch takes it (a job that was
-- interrupted goes first); otherwise it waits behind the others. q is the job's queue, read by
-- the caller before its first write.
local function make_ready(base, jk, id, q, front, now)
  redis.call('HSET', jk, 's', 'queued', 'e', now)
  redis.call('HDEL', jk, 'L', 'o')
  local len
  if front then
    len = redis.call('RPUSH', queue_key(base, q), id)
  else
    len = redis.call('LPUSH', queue_key(base, q), id)
  end
  -- Listed again in case the queue's name was pruned while the job waited elsewhere.
  redis.call('SADD', queues_key(base), q)
  wake(base, q, len)
end

-- Queues a dead or cancelled job again with a fresh budget of failed attempts; its errors and
-- checkpoint stay. The caller has taken it out of the dead set or the finished list.
local function ready_again(base, jk, id, q, now)
  redis.call('PERSIST', jk)
  -- An absent failure count reads as 0.
  redis.call('HDEL', jk, 'x', 'cancel', 'f', 'd', 'R')
  -- 'w': the job was cancelled as it waited, and its id still stands in its queue list (a fetch
  -- clears the mark when it passes the id). It waits there again: pushing it would list it twice.
  if redis.call('HDEL', jk, 'w') == 1 then
    redis.call('HSET', jk, 's', 'queued', 'e', now)
    redis.call('HDEL', jk, 'L', 'o')
    redis.call('SADD', queues_key(base), q)
    return
  end
  make_ready(base, jk, id, q, false, now)
end

-- keep: {retention ms, most finished jobs kept}, parsed by the caller.
local function finish_cancelled(base, jk, id, now, keep)
  redis.call('HSET', jk, 's', 'cancelled', 'f', now)
  redis.call('HDEL', jk, 'L', 'o', 'e')
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

-- Shared limits (limit_*.lua): a key's rate state (the theoretical arrival time of the next
-- start, GCRA), its running holders (zset scored by expiry), and the pauses of every key.
local function limit_rate_key(base, key) return base .. 'limit:rate:' .. key end
local function limit_running_key(base, key) return base .. 'limit:running:' .. key end

-- Records the success of jobs and releases each, if its lease still holds it (ack.lua,
-- ack_many.lua): the jobs are args[from], args[from + 3], ..., each followed by its lease and
-- result (JSON), and ids[i] is the id at args[from + 3 * (i - 1)]. Returns {1|0, ...}: per job, 1,
-- or 0 when the lease is no longer the caller's (nothing is written for it).
-- The minute's count and the finished list are written once for the whole batch, and a job makes
-- no table of its own beyond what redis.call returns: Lua's garbage is most of a script's cost.
local function ack_jobs(base, inflight, ids, args, from, keep)
  local now = now_ms()
  local now_s = tostring(now)
  local out, acked, cancelled = {}, {}, {}
  local wanted = {'L', 'cancel', 'idem_key', 't'}
  for i, id in ipairs(ids) do
    local a = from + 3 * (i - 1)
    local lease, result = args[a + 1], args[a + 2]
    local jk = job_key(base, id)
    -- No lease: an old record's is under its long name ('lease'), renamed first.
    local h = redis.call('HMGET', jk, unpack(wanted))
    if not h[1] and upgrade(jk) then h = redis.call('HMGET', jk, unpack(wanted)) end
    out[i] = 0
    if h[1] == lease then
      out[i] = 1
      -- From the tail: fetch pushes ids at the head, and jobs mostly end in the order they
      -- started, so the id is a few entries from the tail, not behind every other lease (from
      -- the head, a drain with 50 slots compared ~50 entries per ack).
      redis.call('LREM', inflight, '-1', id)
      -- A job cancelled while it ran stays cancelled, whatever it returned. A null result is not
      -- stored: an absent result reads as null. A succeeded job stores its duration, not its
      -- finish time: a small integer (2-4 B in the hash) instead of 13 digits (10 B).
      local started = tonumber(h[4])
      local fin, at = 'f', now_s
      if started then fin, at = 'd', int_text(now - started) end
      if h[2] == '1' then
        cancelled[#cancelled + 1] = {id, now}
        if result == 'null' then
          redis.call('HSET', jk, 'f', now_s)
        else
          redis.call('HSET', jk, 'f', now_s, 'R', result)
        end
      elseif result == 'null' then
        redis.call('HSET', jk, fin, at, 's', 'succeeded')
      else
        redis.call('HSET', jk, fin, at, 's', 'succeeded', 'R', result)
      end
      if fin == 'd' and h[2] ~= '1' then
        -- A finish time left from an earlier life of the job would win over the duration.
        redis.call('HDEL', jk, 'L', 'o', 'e', 'checkpoint', 'f')
      else
        redis.call('HDEL', jk, 'L', 'o', 'e', 'checkpoint')
      end
      -- The queue scopes the idempotency key: read only for a job that has one.
      if h[3] then expire_finished_as(base, jk, keep[1], h[3], redis.call('HGET', jk, 'q')) end
      acked[#acked + 1] = id
    end
  end
  if #acked > 0 then
    count_minutes(base, now, #acked, 0)
    index_finished_many(base, acked, cancelled, keep)
  end
  return out
end
