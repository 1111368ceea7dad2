-- decide.lua: decide every limit of one rate-limit request atomically.
-- The script only says whether the request passes and, if it does, writes;
-- the Go side (quota.Decide) computes remaining, reset and retry-after from
-- the stored values the script returns, with the same arithmetic, so the
-- two cannot drift apart. Kept lean: Redis runs it once per decision.
--
-- KEYS[i]: state of check i (a fixed-window count or a GCRA TAT in µs).
-- ARGV[1]: now (Unix µs); ARGV[2]: '1' to consume, '0' to only look;
-- then 4 values per check, ARGV[4i-1 .. 4i+2]:
--   kind: 'f' fixed window, 'g' GCRA; 'F', 'G' the same in shadow mode
--         (evaluated and written, never refusing the request);
--   fixed: room (limit - hits: over when stored > room), hits, ttl (ms,
--          to the end of the window);
--   GCRA:  slack (hits*interval - burst*interval, or 1 for a zero limit:
--          over when max(stored, now) + slack > now), hits*interval, unused.
-- Reply: the stored value of each check (0 when absent), then 1 if the
-- request passes or 0.
local stored = redis.call('MGET', unpack(KEYS))
local n = #KEYS
local now
local allowed = 1
for i = 1, n do
  local b = 4 * i - 1
  local kind = ARGV[b]
  local cur = tonumber(stored[i]) or 0
  stored[i] = cur
  if kind == 'f' then
    if cur > tonumber(ARGV[b + 1]) then allowed = 0 end
  elseif kind == 'g' then
    now = now or tonumber(ARGV[1])
    if math.max(cur, now) + ARGV[b + 1] > now then allowed = 0 end
  end
end
stored[n + 1] = allowed
if allowed == 0 or ARGV[2] ~= '1' then return stored end

for i = 1, n do
  local b = 4 * i - 1
  local kind = ARGV[b]
  local cur = stored[i]
  if kind == 'f' or kind == 'F' then
    if kind == 'f' or cur <= tonumber(ARGV[b + 1]) then
      if cur > 0 then
        -- The key carries the end of its window as TTL already.
        redis.call('INCRBY', KEYS[i], ARGV[b + 2])
      else
        redis.call('SET', KEYS[i], ARGV[b + 2], 'PX', ARGV[b + 3])
      end
    end
  else
    now = now or tonumber(ARGV[1])
    local tat = math.max(cur, now)
    if kind == 'g' or tat + ARGV[b + 1] <= now then
      tat = tat + ARGV[b + 2]
      -- Forgotten when the bucket is full again.
      redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.max(math.ceil((tat - now) / 1000), 1))
    end
  end
end
return stored
