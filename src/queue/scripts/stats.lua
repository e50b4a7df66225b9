-- stats: one consistent snapshot of the queues and sets, for GET /queues and the metrics line.
-- KEYS[1] known-queues set  KEYS[2] processes set  KEYS[3] scheduled zset  KEYS[4] retry zset
-- KEYS[5] dead zset
-- ARGV[1] base  ARGV[2] most queues listed  ARGV[3] most known names looked at
-- ARGV[4..] queue names always listed (those this process works)
-- Returns {scheduled, retrying, dead, processes, {name, depth, latency ms, running, served (1|0),
-- ...}, omitted, running in all}: served is 0 for a queue with waiting jobs no live process works.
-- the always-listed queues first, then the deepest others, up to ARGV[2] in all; omitted counts
-- the queues left out. Both bounds keep the reply and the script's time small however many
-- queue names clients have used.
local base, max_listed, max_scan = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if not (max_listed and max_scan) then error('bad stats arguments') end
local always_listed = {}
for i = 4, #ARGV do always_listed[#always_listed + 1] = ARGV[i] end
local now = now_ms()
local always, seen, others = {}, {}, {}
for _, name in ipairs(always_listed) do
  if not seen[name] then seen[name] = true; always[#always + 1] = name end
end
local function add(name)
  if not seen[name] then seen[name] = true; others[#others + 1] = name end
end
local known = redis.call('SCARD', KEYS[1])
local unseen = 0
if known <= max_scan then
  for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do add(name) end
else
  for _, name in ipairs(redis.call('SRANDMEMBER', KEYS[1], max_scan)) do add(name) end
  unseen = known - max_scan
end
local running, served, running_total = {}, {}, 0
local processes = redis.call('SMEMBERS', KEYS[2])
for _, process in ipairs(processes) do
  -- A queue is served while a live process (its heartbeat stands) names it in its info.
  local ok, info = pcall(cjson.decode, redis.call('GET', heartbeat_key(base, process)) or 'null')
  if ok and type(info) == 'table' and type(info.queues) == 'table' then
    for _, q in ipairs(info.queues) do served[q] = true end
  end
  for _, id in ipairs(redis.call('LRANGE', inflight_key(base, process), 0, -1)) do
    local q = redis.call('HMGET', job_key(base, id), 'q', 'queue')
    q = q[1] or q[2]
    if q then add(q); running[q] = (running[q] or 0) + 1; running_total = running_total + 1 end
  end
end
local depth = {}
for _, name in ipairs(others) do depth[name] = redis.call('LLEN', queue_key(base, name)) end
table.sort(others, function(a, b)
  if depth[a] ~= depth[b] then return depth[a] > depth[b] end
  return a < b
end)
local listed = {}
for _, name in ipairs(always) do listed[#listed + 1] = name end
for _, name in ipairs(others) do
  if #listed >= max_listed then break end
  listed[#listed + 1] = name
end
local queues = {}
for _, name in ipairs(listed) do
  local key = queue_key(base, name)
  local latency = 0
  local oldest = redis.call('LINDEX', key, -1)
  if oldest then
    local at = redis.call('HMGET', job_key(base, oldest), 'e', 'enqueued_at')
    at = at[1] or at[2]
    if at then latency = math.max(0, now - tonumber(at)) end
  end
  queues[#queues + 1] = name
  queues[#queues + 1] = depth[name] or redis.call('LLEN', key)
  queues[#queues + 1] = latency
  queues[#queues + 1] = running[name] or 0
  queues[#queues + 1] = (served[name] or queues[#queues - 2] == 0) and 1 or 0
end
local omitted = #always + #others + unseen - #listed
return {redis.call('ZCARD', KEYS[3]), redis.call('ZCARD', KEYS[4]), redis.call('ZCARD', KEYS[5]), #processes, queues, omitted, running_total}
