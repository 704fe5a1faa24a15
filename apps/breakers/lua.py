"""The breaker's fleet-wide state machine: atomic Lua scripts on one hash per breaker.

KEYS: the breaker's hash and its fleet window (a list of ``ms:calls:failures:slow``
batches). ARGV starts with the name, the pub/sub channel and the config as JSON.
Every script answers the same reply (see ``apps.breakers.fleet.Reply``); every
transition bumps ``gen``, clears the window and is published on the channel.
"""

_PRELUDE = """
local h, w = KEYS[1], KEYS[2]
local name, channel, cfg = ARGV[1], ARGV[2], cjson.decode(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = {'state', 'gen', 'opened_at', 'wait_ms', 'opens', 'ho_permits', 'ho_calls',
           'ho_fail', 'ho_slow', 'w_calls', 'w_fail', 'w_slow', 'since'}
local r = redis.call('HMGET', h, unpack(f))
local b = {state = r[1] or 'CLOSED'}
for i = 2, #f do b[f[i]] = tonumber(r[i] or '0') end
local from, why = '', ''

local function go(to, reason)
  from, why = b.state, reason
  b.gen = b.gen + 1
  b.since = now
  if to == 'OPEN' then
    b.opens = b.opens + 1
    b.wait_ms = math.floor(math.min(
      cfg.wait_duration_ms * cfg.wait_multiplier ^ (b.opens - 1),
      cfg.max_wait_duration_ms))
    b.opened_at = now
  elseif to == 'CLOSED' then
    b.opens = 0
  end
  b.state = to
  for _, k in ipairs({'ho_permits', 'ho_calls', 'ho_fail', 'ho_slow',
                      'w_calls', 'w_fail', 'w_slow'}) do b[k] = 0 end
  redis.call('DEL', w)
  redis.call('PUBLISH', channel, cjson.encode({name = name, state = to, gen = b.gen,
    opened_at = b.opened_at, wait_ms = b.wait_ms, now = now, from = from,
    reason = reason}))
end

-- A count window smaller than the minimum would never trip (as in resilience4j).
local minimum_calls = cfg.minimum_calls
if cfg.window_type == 'count' then
  minimum_calls = math.min(cfg.minimum_calls, cfg.window_size)
end

local function exceeded(calls, fails, slow, minimum)
  if calls < minimum or calls == 0 then return '' end
  local fr = fails * 100 / calls
  if fr >= cfg.failure_rate_threshold then
    return string.format('fleet failure rate %.1f%%', fr)
  end
  local sr = slow * 100 / calls
  if sr >= cfg.slow_call_rate_threshold then
    return string.format('fleet slow-call rate %.1f%%', sr)
  end
  return ''
end

-- Absent from the config of a process not upgraded yet: wait as before.
local ho_max_wait = tonumber(cfg.max_wait_in_half_open_ms) or 0

local function tick()
  if b.state == 'OPEN' and now >= b.opened_at + b.wait_ms then
    go('HALF_OPEN', 'wait in open state elapsed')
  elseif b.state == 'HALF_OPEN' and ho_max_wait > 0
      and now >= b.since + ho_max_wait then
    -- A permit holder died or hangs: try again after a wait in OPEN.
    go('OPEN', 'half-open calls not completed in ' .. ho_max_wait .. ' ms')
  end
end

local function trim()
  while true do
    local first = redis.call('LINDEX', w, 0)
    if not first then return end
    local ts, c, fl, s = string.match(first, '(%d+):(%d+):(%d+):(%d+)')
    ts, c, fl, s = tonumber(ts), tonumber(c), tonumber(fl), tonumber(s)
    local drop
    if cfg.window_type == 'time' then
      drop = ts <= now - cfg.window_size * 1000
    else
      drop = b.w_calls - c >= cfg.window_size
    end
    if not drop then return end
    redis.call('LPOP', w)
    b.w_calls, b.w_fail, b.w_slow = b.w_calls - c, b.w_fail - fl, b.w_slow - s
  end
end

local function reply(extra)
  local kv = {'state', b.state}
  for i = 2, #f do kv[#kv + 1] = f[i]; kv[#kv + 1] = b[f[i]] end
  redis.call('HSET', h, unpack(kv))
  return {b.state, b.gen, b.opened_at, b.wait_ms, now, from, why,
          b.w_calls, b.w_fail, b.w_slow, extra}
end
"""

# ARGV[4..9]: batch gen, calls, failures, slow, released half-open permits (calls
# that ended without a counted outcome), proposal ("" or a reason to open).
RECORD = (
    _PRELUDE
    + """
tick()
local gen, calls = tonumber(ARGV[4]), tonumber(ARGV[5])
local fails, slow = tonumber(ARGV[6]), tonumber(ARGV[7])
local released, proposal = tonumber(ARGV[8]), ARGV[9]
if gen == b.gen and b.state == 'CLOSED' then
  if calls > 0 then
    redis.call('RPUSH', w, now .. ':' .. calls .. ':' .. fails .. ':' .. slow)
    b.w_calls, b.w_fail, b.w_slow = b.w_calls + calls, b.w_fail + fails, b.w_slow + slow
  end
  trim()
  local reason = exceeded(b.w_calls, b.w_fail, b.w_slow, minimum_calls)
  if reason ~= '' then
    go('OPEN', reason)
  elseif proposal ~= '' then
    go('OPEN', proposal)
  end
elseif gen == b.gen and b.state == 'HALF_OPEN' then
  b.ho_permits = math.max(0, b.ho_permits - released)
  b.ho_calls, b.ho_fail, b.ho_slow = b.ho_calls + calls, b.ho_fail + fails, b.ho_slow + slow
  if calls > 0 and b.ho_calls >= cfg.permitted_calls_half_open then
    local reason = exceeded(b.ho_calls, b.ho_fail, b.ho_slow, 0)
    if reason ~= '' then go('OPEN', 'half-open: ' .. reason)
    else go('CLOSED', 'half-open calls succeeded') end
  end
end
return reply(0)
"""
)

# Takes one of the permitted half-open calls; extra is 1 when granted.
PERMIT = (
    _PRELUDE
    + """
tick()
local granted = 0
if b.state == 'HALF_OPEN' and b.ho_permits < cfg.permitted_calls_half_open then
  b.ho_permits = b.ho_permits + 1
  granted = 1
end
return reply(granted)
"""
)

# ARGV[4..5]: target state, reason (operators' actions); extra is 1 when done.
SET = (
    _PRELUDE
    + """
go(ARGV[4], ARGV[5])
return reply(1)
"""
)
