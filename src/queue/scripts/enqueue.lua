-- enqueue: store a new job and make it ready (or scheduled) in one step; with an idempotency
-- key, a second request with the same key gets the first job instead.
-- KEYS[1] scheduled zset  KEYS[2] known-queues set
-- ARGV[1] base  ARGV[2] id  ARGV[3] kind  ARGV[4] queue  ARGV[5] args (JSON)  ARGV[6] max_attempts
-- ARGV[7] timeout ms or ''  ARGV[8] delay ms or ''  ARGV[9] run_at ms or ''
-- ARGV[10] idempotency key or ''  ARGV[11] idempotency key lifetime ms  ARGV[12] request fingerprint source
-- Returns {'created'|'existing', same_request (1|0), HGETALL of the job}.
local base, id = ARGV[1], ARGV[2]
local now = now_ms()
local due = now
if ARGV[9] ~= '' then
  due = tonumber(ARGV[9])
elseif ARGV[8] ~= '' then
  due = now + tonumber(ARGV[8])
end
if not due or not tonumber(ARGV[6]) then error('bad enqueue arguments') end
local fp = false
if ARGV[10] ~= '' then
  local ik = base .. 'idem:' .. ARGV[10]
  fp = redis.sha1hex(ARGV[12])
  local existing = redis.call('GET', ik)
  -- A key whose job was deleted (the dead set's size cap) no longer answers: make a new job.
  if existing and redis.call('EXISTS', job_key(base, existing)) == 1 then
    local ejk = job_key(base, existing)
    local same = 0
    if redis.call('HGET', ejk, 'idem_fp') == fp then same = 1 end
    return {'existing', same, redis.call('HGETALL', ejk)}
  end
  redis.call('SET', ik, id, 'PX', ARGV[11])
end
local jk = job_key(base, id)
redis.call('HSET', jk, 'id', id, 'kind', ARGV[3], 'queue', ARGV[4], 'args', ARGV[5],
  'attempts', 0, 'failures', 0, 'max_attempts', ARGV[6],
  'created_at', now, 'run_at', math.max(due, now))
if ARGV[7] ~= '' then redis.call('HSET', jk, 'timeout_ms', ARGV[7]) end
if fp then redis.call('HSET', jk, 'idem_key', ARGV[10], 'idem_fp', fp) end
redis.call('SADD', KEYS[2], ARGV[4])
if due > now then
  redis.call('HSET', jk, 'status', 'scheduled')
  redis.call('ZADD', KEYS[1], due, id)
else
  redis.call('HSET', jk, 'status', 'queued', 'enqueued_at', now)
  redis.call('LPUSH', base .. 'queue:' .. ARGV[4], id)
  redis.call('PUBLISH', base .. 'wake', ARGV[4])
end
return {'created', 1, redis.call('HGETALL', jk)}
