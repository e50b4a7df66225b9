-- release: put every job in a process's in-flight list back at the front of its queue and
-- deregister the process. Used by a process on its own shutdown, and by the reaper for every
-- registered process whose heartbeat has expired (it was killed, or lost Redis for too long).
-- KEYS[1] processes set
-- ARGV[1] base  ARGV[2] job retention ms  ARGV[3] most finished jobs kept
-- ARGV[4] the process to release, or '' for every expired one
-- Returns {{process, jobs put back}, ...}.
local base, only = ARGV[1], ARGV[4]
local keep = parse_keep(ARGV[2], ARGV[3])
local now = now_ms()
local function release(process)
  local inflight = inflight_key(base, process)
  local n = 0
  for _, id in ipairs(redis.call('LRANGE', inflight, 0, -1)) do
    local jk = job_hash(base, id)
    local f = redis.call('HMGET', jk, 'o', 'q')
    if f[1] == process and f[2] then
      if is_cancelled(jk) then
        finish_cancelled(base, jk, id, now, keep)
      else
        make_ready(base, jk, id, f[2], true, now)
        n = n + 1
      end
    end
  end
  redis.call('DEL', inflight, heartbeat_key(base, process))
  redis.call('SREM', KEYS[1], process)
  return n
end
local out = {}
if only ~= '' then
  out[1] = {only, release(only)}
  return out
end
for _, process in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', heartbeat_key(base, process)) == 0 then
    out[#out + 1] = {process, release(process)}
  end
end
return out
