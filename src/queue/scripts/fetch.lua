-- fetch: reliable fetch. Moves up to ARGV[3] ready job ids from the queues (tried in the order
-- given) into this process's in-flight list and marks each running under a new lease, atomically:
-- a job is always either in a queue or in exactly one in-flight list.
-- KEYS[1] this process's in-flight list  KEYS[2] this process's heartbeat key
-- ARGV[1] base  ARGV[2] process id  ARGV[3] most jobs to take  ARGV[4..] queue names, in order
-- Returns {'unregistered', {}} when the heartbeat is missing (the process must register first, or a
-- reaper could not tell its in-flight list from a dead one), else {'ok', {job, ...}}, or
-- {'more', {job, ...}} when it stopped at its budget with ids still to look at. Each job is a
-- flat field/value list of what a runner needs (not the whole record: no result, no errors).
local base, process, want = ARGV[1], ARGV[2], tonumber(ARGV[3])
local queues = {}
for i = 4, #ARGV do queues[#queues + 1] = ARGV[i] end
if not want then error('bad fetch arguments') end
if redis.call('EXISTS', KEYS[2]) == 0 then return {'unregistered', {}} end
local now = now_ms()
local jobs = {}
local wanted = {'k', 'q', 'a', 'x', 'm', 'T', 'checkpoint'}
-- Ids of jobs that were cancelled or expired while queued are dropped; the budget bounds how
-- long one call may spend on them.
local budget = 1000
while #jobs < want and budget > 0 do
  budget = budget - 1
  local id = false
  for _, q in ipairs(queues) do
    id = redis.call('LMOVE', queue_key(base, q), KEYS[1], 'RIGHT', 'LEFT')
    if id then break end
  end
  if not id then break end
  local jk = job_hash(base, id)
  if redis.call('HGET', jk, 's') == 'queued' then
    local attempt = redis.call('HINCRBY', jk, 'n', 1)
    local lease = process .. ':' .. attempt
    redis.call('HSET', jk, 's', 'running', 't', now, 'L', lease, 'o', process)
    redis.call('HDEL', jk, 'e', 'f')
    local values = redis.call('HMGET', jk, unpack(wanted))
    local job = {'id', id, 's', 'running', 'n', attempt, 'L', lease, 't', now}
    for i, name in ipairs(wanted) do
      if values[i] then
        job[#job + 1] = name
        job[#job + 1] = values[i]
      end
    end
    jobs[#jobs + 1] = job
  else
    -- Just moved to the head of the list, so this finds it at once. A cancelled job's id is
    -- passed: its mark goes (see ready_again), so a retry pushes it anew.
    redis.call('LREM', KEYS[1], 1, id)
    redis.call('HDEL', jk, 'w')
  end
end
if budget == 0 and #jobs < want then return {'more', jobs} end
return {'ok', jobs}
