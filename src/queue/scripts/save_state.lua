-- save_state: store a running job's progress or checkpoint, if the caller still holds its lease.
-- KEYS[1] job hash
-- ARGV[1] lease  ARGV[2] field ('progress' or 'checkpoint')  ARGV[3] value (JSON)
-- Returns 1, or 0 when the lease is no longer the caller's.
local jk, lease, field, value = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
if not holds_lease(jk, lease) then return 0 end
redis.call('HSET', jk, field, value)
return 1
