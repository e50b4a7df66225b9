-- enqueue: store a new job and make it ready (or scheduled) in one step; with an idempotency
-- key, a second request with the same key gets the first job instead.
-- KEYS[1] scheduled zset  KEYS[2] known-queues set
-- ARGV[1] base  ARGV[2] id  ARGV[3] kind  ARGV[4] queue  ARGV[5] args (JSON)  ARGV[6] max_attempts
-- ARGV[7] timeout ms or ''  ARGV[8] delay ms or ''  ARGV[9] run_at ms or ''
-- ARGV[10] idempotency key or ''  ARGV[11] idempotency key lifetime ms  ARGV[12] request fingerprint source
-- Returns {'created'|'existing', same_request (1|0), the job's fields (see record)}.
local base, id, kind, queue, args, max_attempts = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local timeout_ms, delay_ms, run_at = ARGV[7], ARGV[8], ARGV[9]
local idem, idem_ttl_ms, request = ARGV[10], ARGV[11], ARGV[12]
local now = now_ms()
local due = now
if run_at ~= '' then
  due = tonumber(run_at)
elseif delay_ms ~= '' then
  due = now + tonumber(delay_ms)
end
if not due or not tonumber(max_attempts) then error('bad enqueue arguments') end
local fp = false
if idem ~= '' then
  local ik = idem_key(base, queue, idem)
  fp = redis.sha1hex(request)
  local existing = redis.call('GET', ik)
  -- A key whose job was deleted (the dead set's size cap) no longer answers: make a new job.
  if existing and redis.call('EXISTS', job_key(base, existing)) == 1 then
    local ejk = job_hash(base, existing)
    local same = 0
    if redis.call('HGET', ejk, 'idem_fp') == fp then same = 1 end
    return {'existing', same, record(ejk, existing)}
  end
  redis.call('SET', ik, id, 'PX', idem_ttl_ms)
end
local jk = job_key(base, id)
local status = 'queued'
if due > now then status = 'scheduled' end
-- One HSET writes the record whole. attempts and failures start absent (read as 0), run_at is
-- written only when it differs from created_at, and args only when not {} (which absent means).
local fields = {'k', kind, 'q', queue, 'm', max_attempts, 'c', now, 's', status}
if args ~= '{}' then fields[#fields + 1] = 'a'; fields[#fields + 1] = args end
if due > now then fields[#fields + 1] = 'r'; fields[#fields + 1] = due end
if timeout_ms ~= '' then fields[#fields + 1] = 'T'; fields[#fields + 1] = timeout_ms end
if fp then
  fields[#fields + 1] = 'idem_key'; fields[#fields + 1] = idem
  fields[#fields + 1] = 'idem_fp'; fields[#fields + 1] = fp
end
if status == 'queued' then fields[#fields + 1] = 'e'; fields[#fields + 1] = now end
redis.call('HSET', jk, unpack(fields))
redis.call('SADD', KEYS[2], queue)
if status == 'scheduled' then
  redis.call('ZADD', KEYS[1], due, id)
else
  wake(base, queue, redis.call('LPUSH', queue_key(base, queue), id))
end
return {'created', 1, record(jk, id)}
