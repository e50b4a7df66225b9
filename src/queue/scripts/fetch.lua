-- fetch: reliable fetch. Moves up to ARGV[3] ready job ids from the queues (tried in the order
-- given) into this process's in-flight list and marks each running under a new lease, atomically:
-- a job is always either in a queue or in exactly one in-flight list.
-- KEYS[1] this process's in-flight list  KEYS[2] this process's heartbeat key
-- ARGV[1] base  ARGV[2] process id  ARGV[3] most jobs to take  ARGV[4..] queue names, in order
-- Returns {'unregistered', 0, ''} when the heartbeat is missing (the process must register first,
-- or a reaper could not tell its in-flight list from a dead one), else {'ok', now, jobs}, or
-- {'more', now, jobs} when it stopped at its budget with ids still to look at; now is the jobs'
-- start (ms). The jobs are one string, 9 fields a job joined by the byte 31 (the unit separator),
-- by position: id, attempt, then kind, queue, args, failures, max_attempts, timeout ms and
-- checkpoint, each empty when absent. That is what a runner needs (no result, no errors); its
-- lease is process .. ':' .. attempt. No names, nothing the caller knows already, and one string
-- for all: a reply entry per field cost the caller more to read than the rest of a job's
-- bookkeeping (RESP is parsed entry by entry). The byte cannot occur in a field: ids and queue
-- names are made of letters, digits and '-_.:', a kind is a registered name (which holds no
-- control character: Registry::check_names), numbers are digits, and JSON text escapes control
-- characters (queue/fetch.rs splits on it).
--
-- Cost: ids leave a queue by one RPOP of many and enter the in-flight list by one LPUSH of many;
-- each job then costs one HMGET and one HSET (this script runs once per batch, so a
-- busy process pays per job only for what each job needs).
local base, process, want = ARGV[1], ARGV[2], tonumber(ARGV[3])
local queues = {}
for i = 4, #ARGV do queues[#queues + 1] = ARGV[i] end
if not want or want < 1 then error('bad fetch arguments') end
if redis.call('EXISTS', KEYS[2]) == 0 then return {'unregistered', 0, ''} end
-- As text once: a number passed to redis.call is formatted anew at every call.
local now = now_ms()
local now_s = tostring(now)
local jobs, taken, found = {}, {}, 0
-- What a runner needs; 's' first (the status decides: without it, the record is gone or in long
-- names, renamed first).
local wanted = {'s', 'n', 'k', 'q', 'a', 'x', 'm', 'T', 'checkpoint'}
-- Ids of jobs that were cancelled or expired while queued are dropped; the budget bounds how
-- many ids one call may look at.
local budget = 1000
local exhausted = false
while found < want and budget > 0 and not exhausted do
  local ids = false
  for _, q in ipairs(queues) do
    ids = redis.call('RPOP', queue_key(base, q), math.min(want - found, budget))
    if ids then break end
  end
  if not ids then
    exhausted = true
  else
    budget = budget - #ids
    for _, id in ipairs(ids) do
      local jk = job_key(base, id)
      local v = redis.call('HMGET', jk, unpack(wanted))
      if not v[1] and upgrade(jk) then v = redis.call('HMGET', jk, unpack(wanted)) end
      if v[1] == 'queued' then
        -- As text (see int_text); most jobs are first attempts.
        local attempt = '1'
        if v[2] then attempt = int_text((tonumber(v[2]) or 0) + 1) end
        local lease = process .. ':' .. attempt
        -- 'e' (when it became ready) stays until the attempt's outcome is written: one call less
        -- per job here, and no reader shows it for a job that is not waiting.
        redis.call('HSET', jk, 's', 'running', 'n', attempt, 't', now_s, 'L', lease, 'o', process)
        local at = #jobs
        jobs[at + 1] = id
        jobs[at + 2] = attempt
        -- v[3..9]: kind to checkpoint, false where absent (empty in the reply).
        for i = 3, 9 do jobs[at + i] = v[i] or '' end
        found = found + 1
        taken[#taken + 1] = id
      else
        -- A cancelled job's id is passed: its mark goes (see ready_again), so a retry pushes it
        -- anew.
        redis.call('HDEL', jk, 'w')
      end
    end
  end
end
-- In the order LMOVE one by one would leave them: the oldest job deepest in the list.
if #taken > 0 then redis.call('LPUSH', KEYS[1], unpack(taken)) end
local packed = table.concat(jobs, '\31')
if budget <= 0 and found < want then return {'more', now, packed} end
return {'ok', now, packed}
