-- ack_many: ack.lua for several jobs of one process in one call (the acks of runners that
-- finished while the previous call was on its way; see queue/ack_batch.rs).
-- KEYS[1] the owner's in-flight list
-- ARGV[1] base  ARGV[2] job retention ms  ARGV[3] most finished jobs kept
-- ARGV[4..] per job: id, lease, result (JSON)
-- Returns one character per job, in order: '1', or '0' when its lease was no longer the caller's
-- (one string, not an entry per job: RESP is parsed entry by entry).
local base = ARGV[1]
local keep = parse_keep(ARGV[2], ARGV[3])
if (#ARGV - 3) % 3 ~= 0 then error('bad ack arguments') end
local ids = {}
for a = 4, #ARGV, 3 do ids[#ids + 1] = ARGV[a] end
return table.concat(ack_jobs(base, KEYS[1], ids, ARGV, 4, keep))
