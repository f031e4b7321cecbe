-- Sliding counter: KEYS[1] is a hash {s = current window start µs, c = current count,
-- p = previous count}. ARGV: window µs, limit, n.
-- Returns {allowed, remaining, reset µs, retry µs}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local w = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local start = now - (now % w)
local v = redis.call('HMGET', KEYS[1], 's', 'c', 'p')
local s = tonumber(v[1] or 0)
local cur = tonumber(v[2] or 0)
local prev = tonumber(v[3] or 0)
if s ~= start then
  if s + w == start then prev = cur else prev = 0 end
  cur = 0
end
local e = now - start
local function remaining()
  local room = (limit * w - prev * (w - e) - cur * w) / w
  return math.max(math.floor(room), 0)
end
local function reset()
  if cur > 0 then return start + 2 * w - now end
  if prev > 0 then return start + w - now end
  return 0
end
-- The earliest elapsed time in a window with counts (p, c) at which n more fit, or nil.
local function earliest(p, c)
  local room = limit - c - n
  if room < 0 then return nil end
  if p == 0 then return 0 end
  local x = w - math.floor(room * w / p)
  if x < w then return x end
  return nil
end
if prev * (w - e) + (cur + n) * w > limit * w then
  local retry
  local x = earliest(prev, cur)
  if x then
    retry = x - e
  else
    local y = earliest(cur, 0)
    if y then retry = start + w + y - now else retry = start + 2 * w - now end
  end
  return {0, remaining(), reset(), retry}
end
cur = cur + n
if n > 0 then
  redis.call('HSET', KEYS[1], 's', string.format('%.0f', start), 'c', cur, 'p', prev)
  redis.call('PEXPIRE', KEYS[1], math.ceil((start + 2 * w - now) / 1000) + 1)
end
return {1, remaining(), reset(), 0}
