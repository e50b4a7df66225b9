-- enqueue_bulk: store a batch of new jobs, all or none, in one step. Each job has the fields
-- enqueue.lua takes and may carry its own idempotency key: a key seen before (in Redis, or
-- earlier in this batch) with the same request answers with that job instead of a new one.
-- Every job of a batch goes to a queue of this shard (a batch over several shards is one call
-- per shard: see queue/bulk.rs).
-- KEYS[1] scheduled zset  KEYS[2] the shard's queue-names set
-- ARGV[1] base  ARGV[2] idempotency key lifetime ms  ARGV[3] how many jobs
-- ARGV[4] 'write', or 'check': read and check only (no write), answering {'ok', '', {}} or a
--   'reused' reply
-- ARGV[5..] 9 values per job: id kind queue args max_attempts timeout_ms-or-'' delay_ms-or-''
--   run_at-ms-or-'' idempotency-key-or-''; then, for each job with a key, in order, the request
--   fingerprint source.
-- Returns {'reused', index (0-based), {}} when a key was used with a different request (nothing
-- is written; three entries like the other reply, so the caller reads one shape), else
-- {'ok', marks, answered}: marks has one letter per job, in the batch's order:
-- 'q' created queued, 's' created scheduled, 'e' answered by an earlier job, whose id and status
-- are the next pair in answered. The caller knows the ids it created: a 1,000-job batch is
-- answered with one string of 1,000 letters, not 3,000 strings the caller must parse and free.
local base, idem_ttl_ms = ARGV[1], ARGV[2]
local per, first, count = 9, 5, tonumber(ARGV[3])
local check_only = ARGV[4] == 'check'
if not count or #ARGV < first - 1 + count * per then error('bad enqueue arguments') end
local now = now_ms()
local now_s = tostring(now)
-- Per job, by its place in the batch (1-based): its due time, and for a job with a key, what
-- the key found. Plain arrays, not a table per job: a batch of 1,000 makes no garbage per job
-- that has no key.
local dues = {}
local fps, existing, same_as = {}, {}, {}
local seen = {}
local requests = first + count * per
-- Every job is read and checked before the first write: Redis does not roll a script back.
for i = 1, count do
  local a = first + (i - 1) * per
  local due = now
  if ARGV[a + 7] ~= '' then
    due = tonumber(ARGV[a + 7])
  elseif ARGV[a + 6] ~= '' then
    due = now + tonumber(ARGV[a + 6])
  end
  if not due or not tonumber(ARGV[a + 4]) then error('bad enqueue arguments') end
  dues[i] = due
  local idem = ARGV[a + 8]
  if idem ~= '' then
    local fp = redis.sha1hex(ARGV[requests])
    requests = requests + 1
    fps[i] = fp
    -- A key's scope is its queue (see idem_key).
    local scoped = idem_key(base, ARGV[a + 2], idem)
    local earlier = seen[scoped]
    if earlier then
      if fps[earlier] ~= fp then return {'reused', i - 1, {}} end
      same_as[i] = earlier
    else
      local found = redis.call('GET', scoped)
      if found and redis.call('EXISTS', job_key(base, found)) == 1 then
        local ejk = job_key(base, found)
        if redis.call('HGET', ejk, 'idem_fp') ~= fp then return {'reused', i - 1, {}} end
        local st = redis.call('HMGET', ejk, 's', 'status')
        existing[i] = {found, st[1] or st[2]}
      end
      seen[scoped] = i
    end
  end
end
if check_only then return {'ok', '', {}} end
local marks, answered = {}, {}
-- What each job became: {id, status}, for a later job of the batch with the same key.
local made = {}
local touched = {}
-- Ready ids per queue, pushed with one LPUSH per queue (in batch order, so the first runs first).
local ready_ids = {}
local fields = {}
for i = 1, count do
  local a = first + (i - 1) * per
  local id, queue = ARGV[a], ARGV[a + 2]
  local known = existing[i] or (same_as[i] and (existing[same_as[i]] or made[same_as[i]]))
  if known then
    marks[i] = 'e'
    answered[#answered + 1] = known[1]
    answered[#answered + 1] = known[2]
  else
    local due = dues[i]
    local status = 'queued'
    if due > now then status = 'scheduled' end
    -- One HSET per job: the record is written whole, the same record enqueue.lua writes. One
    -- table for every job's fields, written over: unpack takes the first n.
    local cf, cv = created_field(id, now)
    fields[1], fields[2], fields[3], fields[4] = 'k', ARGV[a + 1], 'q', queue
    fields[5], fields[6], fields[7], fields[8] = 'm', ARGV[a + 4], cf, int_text(cv)
    fields[9], fields[10] = 's', status
    local n = 10
    if ARGV[a + 3] ~= '{}' then fields[n + 1], fields[n + 2], n = 'a', ARGV[a + 3], n + 2 end
    if status == 'scheduled' then fields[n + 1], fields[n + 2], n = 'r', int_text(due), n + 2 end
    if ARGV[a + 5] ~= '' then fields[n + 1], fields[n + 2], n = 'T', ARGV[a + 5], n + 2 end
    local fp = fps[i]
    if fp then
      local idem = ARGV[a + 8]
      redis.call('SET', idem_key(base, queue, idem), id, 'PX', idem_ttl_ms)
      fields[n + 1], fields[n + 2], fields[n + 3], fields[n + 4] = 'idem_key', idem, 'idem_fp', fp
      n = n + 4
      made[i] = {id, status}
    end
    local jk = job_key(base, id)
    if status == 'scheduled' then
      redis.call('HSET', jk, unpack(fields, 1, n))
      redis.call('ZADD', KEYS[1], int_text(due), id)
    else
      fields[n + 1], fields[n + 2], n = 'e', now_s, n + 2
      redis.call('HSET', jk, unpack(fields, 1, n))
      local ready = ready_ids[queue]
      if not ready then ready = {}; ready_ids[queue] = ready end
      ready[#ready + 1] = id
    end
    touched[queue] = true
    marks[i] = 'q'
    if status == 'scheduled' then marks[i] = 's' end
  end
end
-- One SADD and at most one wake-up per queue: a queue that already held jobs has a worker on
-- its way (see make_ready in prelude.lua).
for queue, _ in pairs(touched) do
  redis.call('SADD', KEYS[2], queue)
  local ready = ready_ids[queue]
  if ready and redis.call('LPUSH', queue_key(base, queue), unpack(ready)) == #ready then
    redis.call('PUBLISH', wake_channel(base), queue)
  end
end
return {'ok', table.concat(marks), answered}
