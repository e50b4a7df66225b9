-- processes: every live registered process, as its heartbeat describes it.
-- KEYS[1] processes set
-- ARGV[1] base
-- Returns {now ms, {{process, info (JSON), heartbeat ms left, jobs in flight}, ...}}; a
-- registered process whose heartbeat expired (dead, not yet reaped) is left out.
local base = ARGV[1]
local out = {}
for _, process in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local hk = heartbeat_key(base, process)
  local info = redis.call('GET', hk)
  if info then
    out[#out + 1] = {process, info, redis.call('PTTL', hk), redis.call('LLEN', inflight_key(base, process))}
  end
end
return {now_ms(), out}
