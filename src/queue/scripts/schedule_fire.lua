-- schedule_fire: fire one tick of one schedule, at most once however many processes ask.
-- The schedule's hash keeps 'tick', the latest tick handled (fired, skipped or passed over as
-- missed); a tick at or before it is done. Otherwise, in one step:
--   * a tick later than its grace was missed: it fires only with the 'one' policy and when the
--     schedule existed at the tick ('since'); else it is recorded as missed and not run;
--   * overlap off and the previous tick's job still waiting or running: recorded as skipped;
--   * else the job is stored exactly as enqueue.lua stores one (with the schedule's name and
--     tick besides), made ready, and recorded.
-- KEYS[1] the schedule's hash
-- ARGV[1] base  ARGV[2] schedule name  ARGV[3] tick ms  ARGV[4] grace ms  ARGV[5] 'one'|'skip'
-- ARGV[6] overlap '1'|'0'  ARGV[7] job id  ARGV[8] kind  ARGV[9] queue  ARGV[10] args (JSON)
-- ARGV[11] max_attempts  ARGV[12] timeout ms or ''
-- Returns {tag, now, a, b}: {'early', now, '', ''} (the tick is ahead of Redis's clock),
-- {'done', ...}, {'missed', now, 'new'|'skip', ''}, {'skipped', now, previous job id, its status}
-- or {'fired', now, job id, '1' when it caught up a missed tick else '0'}.
local sk = KEYS[1]
local base, name, tick, grace = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local policy, overlap = ARGV[5], ARGV[6]
local id, kind, queue, args, max_attempts, timeout_ms =
  ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12]
if not tick or not grace or not tonumber(max_attempts) then error('bad schedule_fire arguments') end
local now = now_ms()
if tick > now then return {'early', now, '', ''} end
local handled = tonumber(redis.call('HGET', sk, 'tick'))
if handled and handled >= tick then return {'done', now, '', ''} end
local since = tonumber(redis.call('HGET', sk, 'since'))
if not since then
  -- Registration lost (Redis emptied): the schedule is new from now on.
  since = now
  redis.call('HSET', sk, 'name', name, 'since', now)
end
local late = now - tick > grace
if late then
  local why = false
  if tick < since then why = 'new' elseif policy ~= 'one' then why = 'skip' end
  if why then
    redis.call('HSET', sk, 'tick', tick, 'missed_tick', tick)
    return {'missed', now, why, ''}
  end
end
if overlap == '0' then
  local previous = redis.call('HGET', sk, 'last_job_id')
  if previous then
    local status = redis.call('HGET', job_hash(base, previous), 's')
    if status == 'queued' or status == 'scheduled' or status == 'running' or status == 'retrying' then
      redis.call('HSET', sk, 'tick', tick, 'skipped_tick', tick)
      return {'skipped', now, previous, status}
    end
  end
end
local jk = job_key(base, id)
-- The fields enqueue.lua writes for a job due now (absent attempts, failures and run_at; args
-- only when not {}); make_ready adds its status and enqueued_at.
local fields = {'k', kind, 'q', queue, 'm', max_attempts, 'c', now, 'schedule', name,
  'schedule_tick', tick}
if args ~= '{}' then fields[#fields + 1] = 'a'; fields[#fields + 1] = args end
if timeout_ms ~= '' then fields[#fields + 1] = 'T'; fields[#fields + 1] = timeout_ms end
redis.call('HSET', jk, unpack(fields))
make_ready(base, jk, id, queue, false, now)
redis.call('HSET', sk, 'tick', tick, 'last_tick', tick, 'last_run_at', now, 'last_job_id', id)
local caught_up = '0'
if late then caught_up = '1' end
return {'fired', now, id, caught_up}
