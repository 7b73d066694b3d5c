"""The Lua scripts the Redis backend runs: each check is one atomic EVALSHA.

Time comes from the server (``TIME``), never from the nodes, so nodes with skewed clocks still
share one timeline. Numbers are written back with ``%.0f``: Lua's default number formatting
keeps 14 digits and would round microsecond timestamps.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Script:
    name: str
    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


#: GCRA over KEYS[1..n] and, when KEYS has one more, a lease in that sorted set; all or nothing.
#: ARGV: n, then interval_us, burst, cost per rate key, then limit, member, ttl_ms for the lease.
#: Returns {0, 0} when allowed, else {i, retry_us}: i is the refusing key (n + 1: the lease).
CHECK = Script("check", r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[1])
local tats = {}
for i = 1, n do
  local j = 2 + (i - 1) * 3
  local interval = tonumber(ARGV[j])
  local burst = tonumber(ARGV[j + 1])
  local cost = tonumber(ARGV[j + 2])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local new_tat = tat + interval * cost
  local allow_at = new_tat - interval * burst
  if allow_at > now then
    if cost > burst then return {i, math.floor(interval * burst)} end
    return {i, math.ceil(allow_at - now)}
  end
  tats[i] = new_tat
end
if #KEYS > n then
  local j = 2 + n * 3
  local key = KEYS[n + 1]
  local ttl = tonumber(ARGV[j + 2])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.0f', now))
  if redis.call('ZCARD', key) >= tonumber(ARGV[j]) then return {n + 1, 0} end
  redis.call('ZADD', key, string.format('%.0f', now + ttl * 1000), ARGV[j + 1])
  redis.call('PEXPIRE', key, ttl)
end
for i = 1, n do
  local ttl = math.ceil((tats[i] - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', ttl)
end
return {0, 0}
""")

#: Push back the expiry of lease ARGV[2..] in sorted set KEYS[1] by ARGV[1] ms, only where the
#: lease is still there and live: a released or expired lease is never brought back.
REFRESH = Script("refresh", r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[1])
local expiry = string.format('%.0f', now + ttl * 1000)
local n = 0
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) > now then
    redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i])
    n = n + 1
  end
end
if n > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return n
""")

#: For ``show``: server time, then kind and value per key ("rate" TAT, "lease" live count).
INSPECT = Script("inspect", r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {string.format('%.0f', now)}
for i = 1, #KEYS do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind == 'string' then
    out[#out + 1] = 'rate'
    out[#out + 1] = redis.call('GET', KEYS[i])
  elseif kind == 'zset' then
    out[#out + 1] = 'lease'
    out[#out + 1] = tostring(redis.call('ZCOUNT', KEYS[i], '(' .. string.format('%.0f', now), '+inf'))
  else
    out[#out + 1] = 'none'
    out[#out + 1] = '0'
  end
end
return out
""")

ALL = (CHECK, REFRESH, INSPECT)
