-- prune_queues: drop from the known-queues set the names that have no waiting job and that no
-- live process works, so the set (and GET /queues) does not grow with every name a client ever
-- sent. A name comes back when a job is queued to it again (enqueue and make_ready add it).
-- Looks at a random sample of names per call, so one call stays short however many there are.
-- KEYS[1] known-queues set  KEYS[2] processes set
-- ARGV[1] base  ARGV[2] how many names to look at
-- Returns how many names were dropped.
local base, sample = ARGV[1], tonumber(ARGV[2])
if not sample or sample < 1 then error('bad sample size') end
local served = {}
for _, process in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local info = redis.call('GET', heartbeat_key(base, process))
  if info then
    local ok, decoded = pcall(cjson.decode, info)
    if ok and type(decoded) == 'table' and type(decoded.queues) == 'table' then
      for _, q in ipairs(decoded.queues) do served[q] = true end
    end
  end
end
-- A short list may hold only ids that no longer wait (cancelled jobs stay in their list until
-- a fetch skips them, and nobody fetches from an unserved queue): such a list is deleted too.
local function nothing_waits(qk)
  local len = redis.call('LLEN', qk)
  if len == 0 then return true end
  if len > 16 then return false end
  for _, id in ipairs(redis.call('LRANGE', qk, 0, -1)) do
    local status = redis.call('HMGET', job_key(base, id), 's', 'status')
    if (status[1] or status[2]) == 'queued' then return false end
  end
  return true
end
local dropped = 0
for _, name in ipairs(redis.call('SRANDMEMBER', KEYS[1], sample)) do
  local qk = queue_key(base, name)
  if not served[name] and nothing_waits(qk) then
    redis.call('DEL', qk)
    redis.call('SREM', KEYS[1], name)
    dropped = dropped + 1
  end
end
return dropped
