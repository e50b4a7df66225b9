-- enqueue: store new jobs, each on its own, and make each ready (or scheduled); with an
-- idempotency key, a second request with the same key gets the first job instead. One call
-- carries the POSTs that arrived while the previous call was on its way (queue/enqueue_batch.rs):
-- unlike enqueue_bulk, a job's outcome does not depend on the others'.
-- KEYS[1] scheduled zset  KEYS[2] known-queues set
-- ARGV[1] base  ARGV[2] idempotency key lifetime ms
-- ARGV[3..] 10 per job: id kind queue args (JSON) max_attempts timeout-ms-or-'' delay-ms-or-''
--   run_at-ms-or-'' idempotency-key-or-'' request-fingerprint-source
-- Returns, per job, {'created', 1, {status, created_at ms, run_at ms}}: what Redis decided of a
-- new job (the caller has the rest, and builds the record from both, so nothing it sent comes
-- back), or {'existing', same_request (1|0), the earlier job's fields (see record)}.
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
local out = {}
local listed = {}
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
    out[i] = existing
  else
    local jk = job_key(base, id)
    local status = 'queued'
    if due > now then status = 'scheduled' end
    -- One HSET writes the record whole. attempts and failures start absent (read as 0), run_at
    -- is written only when it differs from created_at, and args only when not {} (which absent
    -- means).
    local cf, cv = created_field(id, now)
    local fields = {'k', kind, 'q', queue, 'm', max_attempts, cf, cv, 's', status}
    if args ~= '{}' then fields[#fields + 1] = 'a'; fields[#fields + 1] = args end
    if due > now then fields[#fields + 1] = 'r'; fields[#fields + 1] = due end
    if timeout_ms ~= '' then fields[#fields + 1] = 'T'; fields[#fields + 1] = timeout_ms end
    if fp then
      fields[#fields + 1] = 'idem_key'; fields[#fields + 1] = idem
      fields[#fields + 1] = 'idem_fp'; fields[#fields + 1] = fp
    end
    if status == 'queued' then fields[#fields + 1] = 'e'; fields[#fields + 1] = now_s end
    redis.call('HSET', jk, unpack(fields))
    if not listed[queue] then
      redis.call('SADD', KEYS[2], queue)
      listed[queue] = true
    end
    if status == 'scheduled' then
      redis.call('ZADD', KEYS[1], due, id)
    else
      wake(base, queue, redis.call('LPUSH', queue_key(base, queue), id))
    end
    -- What record() would read back of it that the caller did not send: a job due at once
    -- reads as run at its creation.
    local run_at = now
    if due > now then run_at = due end
    out[i] = {'created', 1, {status, now, run_at}}
  end
end
return out
