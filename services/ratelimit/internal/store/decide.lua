-- decide.lua: decide every limit of one rate-limit request atomically.
-- Mirrors quota.Evaluate and quota.Decide (Go); keep the two in step.
--
-- KEYS[i]: state of check i (a fixed-window count or a GCRA TAT in µs).
-- ARGV[1]: now (Unix µs); ARGV[2]: 1 to consume, 0 to only look;
-- then 8 values per check:
--   gcra (0/1), limit, hits, window_end, interval, burst, period, shadow (0/1).
-- Reply: {allowed, then over, remaining, reset, retry_after per check}.
local now = tonumber(ARGV[1])
local commit = ARGV[2] == '1'
local n = #KEYS
local stored = redis.call('MGET', unpack(KEYS))

-- evaluate returns over, remaining, reset, retry_after and the value to
-- store if the request passes (nil when over).
local function evaluate(i, hits)
  local b = 2 + (i - 1) * 8
  local gcra = ARGV[b + 1] == '1'
  local limit = tonumber(ARGV[b + 2])
  local wend = tonumber(ARGV[b + 4])
  local interval = tonumber(ARGV[b + 5])
  local burst = tonumber(ARGV[b + 6])
  local period = tonumber(ARGV[b + 7])
  local cur = tonumber(stored[i] or '0') or 0
  if limit <= 0 then
    local reset = wend - now
    if gcra then reset = period end
    return 1, 0, reset, reset, nil
  end
  if not gcra then
    local count = cur + hits
    local reset = wend - now
    if count > limit then
      return 1, math.max(limit - cur, 0), reset, reset, nil
    end
    local remaining = limit - count
    local retry = 0
    if remaining == 0 then retry = reset end
    return 0, remaining, reset, retry, count
  end
  local tat = math.max(cur, now)
  local tolerance = burst * interval
  local newtat = tat + hits * interval
  if newtat - tolerance > now then
    return 1, math.max(math.floor((tolerance - (tat - now)) / interval), 0), tat - now,
      math.max(tat + interval - tolerance - now, 1), nil
  end
  local remaining = math.floor((tolerance - (newtat - now)) / interval)
  local retry = 0
  if remaining == 0 then retry = math.max(newtat + interval - tolerance - now, 1) end
  return 0, remaining, newtat - now, retry, newtat
end

local reply = {1}
local writes = {}
local allowed = 1
for i = 1, n do
  local over, remaining, reset, retry, write = evaluate(i, tonumber(ARGV[2 + (i - 1) * 8 + 3]))
  if over == 1 and ARGV[2 + (i - 1) * 8 + 8] ~= '1' then allowed = 0 end
  writes[i] = write
  local o = 1 + (i - 1) * 4
  reply[o + 1], reply[o + 2], reply[o + 3], reply[o + 4] = over, remaining, reset, retry
end
reply[1] = allowed

if allowed == 0 then
  -- Nothing is consumed: checks that had room report what is really left.
  for i = 1, n do
    local o = 1 + (i - 1) * 4
    if reply[o + 1] == 0 then
      local _, remaining, reset, retry = evaluate(i, 0)
      reply[o + 2], reply[o + 3], reply[o + 4] = remaining, reset, retry
    end
  end
elseif commit then
  for i = 1, n do
    local w = writes[i]
    if w then
      local b = 2 + (i - 1) * 8
      local expire_at = w
      if ARGV[b + 1] ~= '1' then expire_at = tonumber(ARGV[b + 4]) end
      local ttl = math.max(math.ceil((expire_at - now) / 1000), 1)
      redis.call('SET', KEYS[i], string.format('%.0f', w), 'PX', ttl)
    end
  end
end
return reply
