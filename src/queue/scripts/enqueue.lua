-- enqueue: store a new job and make it ready (or scheduled) in one step; with an idempotency
-- key, a second request with the same key gets the first job instead.
-- KEYS[1] scheduled zset  KEYS[2] known-queues set
-- ARGV[1] base  ARGV[2] id  ARGV[3] kind  ARGV[4] queue  ARGV[5] args (JSON)  ARGV[6] max_attempts
-- ARGV[7] timeout ms or ''  ARGV[8] delay ms or ''  ARGV[9] run_at ms or ''
-- ARGV[10] idempotency key or ''  ARGV[11] idempotency key lifetime ms  ARGV[12] request fingerprint source
-- Returns {'created'|'existing', same_request (1|0), HGETALL of the job}.
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
  local ik = idem_key(base, idem)
  fp = redis.sha1hex(request)
  local existing = redis.call('GET', ik)
  -- A key whose job was deleted (the dead set's size cap) no longer answers: make a new job.
  if existing and redis.call('EXISTS', job_key(base, existing)) == 1 then
    local ejk = job_key(base, existing)
    local same = 0
    if redis.call('HGET', ejk, 'idem_fp') == fp then same = 1 end
    return {'existing', same, redis.call('HGETALL', ejk)}
  end
  redis.call('SET', ik, id, 'PX', idem_ttl_ms)
end
local jk = job_key(base, id)
redis.call('HSET', jk, 'id', id, 'kind', kind, 'queue', queue, 'args', args,
  'attempts', 0, 'failures', 0, 'max_attempts', max_attempts,
  'created_at', now, 'run_at', math.max(due, now))
if timeout_ms ~= '' then redis.call('HSET', jk, 'timeout_ms', timeout_ms) end
if fp then redis.call('HSET', jk, 'idem_key', idem, 'idem_fp', fp) end
redis.call('SADD', KEYS[2], queue)
if due > now then
  redis.call('HSET', jk, 'status', 'scheduled')
  redis.call('ZADD', KEYS[1], due, id)
else
  redis.call('HSET', jk, 'status', 'queued', 'enqueued_at', now)
  redis.call('LPUSH', queue_key(base, queue), id)
  redis.call('PUBLISH', wake_channel(base), queue)
end
return {'created', 1, redis.call('HGETALL', jk)}
