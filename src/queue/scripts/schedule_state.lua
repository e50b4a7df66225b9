-- schedule_state: what GET /schedules shows of each schedule, read in one step.
-- KEYS: the schedules' hashes.  ARGV[1] base
-- Returns one {last_run_at, last_job_id, the job's status, last_tick} per key, '' where absent
-- (the status is '' too once the job's record has expired).
local base = ARGV[1]
local out = {}
for i = 1, #KEYS do
  local f = redis.call('HMGET', KEYS[i], 'last_run_at', 'last_job_id', 'last_tick')
  local status = false
  if f[2] then
    -- Read only: a record from before the short field names is read under either name.
    local s = redis.call('HMGET', job_key(base, f[2]), 's', 'status')
    status = s[1] or s[2]
  end
  out[i] = {f[1] or '', f[2] or '', status or '', f[3] or ''}
end
return out
