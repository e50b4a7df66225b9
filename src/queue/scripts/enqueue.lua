-- enqueue: store new jobs, each on its own, and make each ready (or scheduled); with an
-- idempotency key, a second request with the same key gets the first job instead. One call
-- carries the POSTs that arrived while the previous call was on its way (queue/enqueue_batch.rs):
-- unlike enqueue_bulk, a job's outcome does not depend on the others'.
-- KEYS[1] scheduled zset  KEYS[2] known-queues set
-- ARGV[1] base  ARGV[2] idempotency key lifetime ms
-- ARGV[3..] 10 per job: id kind queue args (JSON) max_attempts timeout-ms-or-'' delay-ms-or-''
--   run_at-ms-or-'' idempotency-key-or-'' request-fingerprint-source
-- Returns {now ms, then per job one entry}: what Redis decided of a new job, which was created at
-- now (the caller has the rest, and builds the record from both, so nothing it sent comes back):
-- 0 when it is queued, or its run_at ms when it is scheduled; or, for a job that was there
-- already, {'existing', same_request (1|0), the earlier job's fields (see record)}. A number, not
-- a table, for a new job: the two tables each job's answer used to be cost about a fifth of
-- Redis's CPU per enqueued job.
local base, idem_ttl_ms = ARGV[1], ARGV[2]
local per = 10
if (#ARGV - 2) % per ~= 0 then error('bad enqueue arguments') end
local now = now_ms()
local now_s = tostring(now)
-- Every job is checked before the first write: Redis does not roll a script back.
local dues = {}
for a = 3, #ARGV, per do
  local due = now
  if ARGV[a + 7] ~= '' then
    due = tonumber(ARGV[a + 7])
  elseif ARGV[a + 6] ~= '' then
    due = now + tonumber(ARGV[a + 6])
  end
  if not due or not tonumber(ARGV[a + 4]) then error('bad enqueue arguments') end
  dues[#dues + 1] = due
end
local out = {now}
local listed = {}
-- Every new job's HSET arguments, refilled in place: a table per job was garbage for Lua's
-- collector, and the growth of each a reallocation or two.
local fields = {'k', false, 'q', false, 'm', false, false, false, 's', false}
for i, due in ipairs(dues) do
  local a = 3 + (i - 1) * per
  local id, kind, queue, args, max_attempts = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local timeout_ms, idem, request = ARGV[a + 5], ARGV[a + 8], ARGV[a + 9]
  local fp = false
  local existing = false
  if idem ~= '' then
    local ik = idem_key(base, queue, idem)
    fp = redis.sha1hex(request)
    local earlier = redis.call('GET', ik)
    -- A key whose job was deleted (the dead set's size cap) no longer answers: make a new job.
    if earlier and redis.call('EXISTS', job_key(base, earlier)) == 1 then
      local ejk = job_hash(base, earlier)
      local same = 0
      if redis.call('HGET', ejk, 'idem_fp') == fp then same = 1 end
      existing = {'existing', same, record(ejk, earlier)}
    else
      redis.call('SET', ik, id, 'PX', idem_ttl_ms)
    end
  end
  if existing then
    out[i + 1] = existing
  else
    local jk = job_key(base, id)
    local status = 'queued'
    if due > now then status = 'scheduled' end
    -- One HSET writes the record whole. attempts and failures start absent (read as 0), run_at
    -- is written only when it differs from created_at, and args only when not {} (which absent
    -- means).
    local cf, cv = created_field(id, now)
    fields[2], fields[4], fields[6] = kind, queue, max_attempts
    fields[7], fields[8], fields[10] = cf, int_text(cv), status
    local n = 10
    if args ~= '{}' then
      fields[11], fields[12] = 'a', args
      n = 12
    end
    if due > now then
      fields[n + 1], fields[n + 2] = 'r', int_text(due)
      n = n + 2
    end
    if timeout_ms ~= '' then
      fields[n + 1], fields[n + 2] = 'T', timeout_ms
      n = n + 2
    end
    if fp then
      fields[n + 1], fields[n + 2], fields[n + 3], fields[n + 4] = 'idem_key', idem, 'idem_fp', fp
      n = n + 4
    end
    if status == 'queued' then
      fields[n + 1], fields[n + 2] = 'e', now_s
      n = n + 2
    end
    redis.call('HSET', jk, unpack(fields, 1, n))
    if not listed[queue] then
      redis.call('SADD', KEYS[2], queue)
      listed[queue] = true
    end
    if status == 'scheduled' then
      redis.call('ZADD', KEYS[1], int_text(due), id)
    else
      wake(base, queue, redis.call('LPUSH', queue_key(base, queue), id))
    end
    -- A job due at once reads as run at its creation.
    if due > now then out[i + 1] = due else out[i + 1] = 0 end
  end
end
return out
