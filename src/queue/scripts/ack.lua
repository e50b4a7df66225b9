-- ack: record a job's success and release it, if the caller still holds its lease.
-- KEYS[1] job hash  KEYS[2] the owner's in-flight list
-- ARGV[1] base  ARGV[2] lease  ARGV[3] result (JSON)  ARGV[4] job retention ms
-- ARGV[5] most finished jobs kept
-- Returns 1, or 0 when the lease is no longer the caller's (nothing is written).
local base, jk, lease, result = ARGV[1], KEYS[1], ARGV[2], ARGV[3]
local keep = parse_keep(ARGV[4], ARGV[5])
if not holds_lease(jk, lease) then return 0 end
local now = now_ms()
local id = id_of(base, jk)
redis.call('LREM', KEYS[2], 1, id)
-- A job cancelled while it ran stays cancelled, whatever it returned. A null result is not
-- stored: an absent result reads as null.
local fields = {'f', now}
if not is_cancelled(jk) then fields[3] = 's'; fields[4] = 'succeeded' end
if result ~= 'null' then fields[#fields + 1] = 'R'; fields[#fields + 1] = result end
redis.call('HSET', jk, unpack(fields))
redis.call('HDEL', jk, 'L', 'o', 'checkpoint')
expire_finished(base, jk, keep[1])
index_finished(base, id, keep)
return 1
