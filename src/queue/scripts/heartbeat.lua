-- heartbeat: register this process, or renew its registration, for ARGV[2] ms.
-- KEYS[1] this process's heartbeat key  KEYS[2] processes set  KEYS[3] this process's in-flight list
-- ARGV[1] base  ARGV[2] heartbeat lifetime ms  ARGV[3] process info (JSON)  ARGV[4] '1' if registered before
-- ARGV[5] process id
-- Returns {reaped, {ids of this process's running jobs that were cancelled through the API},
-- {id, lease, id, lease, ...} of the jobs this process holds}.
-- reaped = 1 means a reaper released this process (its heartbeat had expired): its leases are
-- void, and it is not registered again here, so that it fetches nothing until it has stopped the
-- jobs it was running and registers afresh.
local base, ttl_ms, info, renewal, process = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1', ARGV[5]
if renewal and redis.call('SISMEMBER', KEYS[2], process) == 0 then return {1, {}, {}} end
redis.call('SET', KEYS[1], info, 'PX', ttl_ms)
redis.call('SADD', KEYS[2], process)
local cancelled, held = {}, {}
for _, id in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  local jk = job_hash(base, id)
  local f = redis.call('HMGET', jk, 'cancel', 'L', 'o')
  if f[1] == '1' then
    cancelled[#cancelled + 1] = id
  end
  local lease = f[2]
  if lease and f[3] == process then
    held[#held + 1] = id
    held[#held + 1] = lease
  end
end
return {0, cancelled, held}
