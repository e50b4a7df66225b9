-- ack: record a job's success and release it, if the caller still holds its lease.
-- KEYS[1] job hash  KEYS[2] the owner's in-flight list
-- ARGV[1] base  ARGV[2] lease  ARGV[3] result (JSON)  ARGV[4] job retention ms
-- ARGV[5] most finished jobs kept
-- Returns 1, or 0 when the lease is no longer the caller's (nothing is written).
local keep = parse_keep(ARGV[4], ARGV[5])
local args = {id_of(ARGV[1], KEYS[1]), ARGV[2], ARGV[3]}
return ack_jobs(ARGV[1], KEYS[2], {args[1]}, args, 1, keep)[1]
