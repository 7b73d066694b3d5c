"""Rate limiting: the ``rate_limiter`` plugin, in memory or shared on Redis/Valkey.

One concern per module:

- :mod:`.config`: the ``[rate_limiter]`` section (limits, rules, overrides, lists, backend);
- :mod:`.rules`: the compiled policy (who is allowed, denied, limited how; what a hook charges);
- :mod:`.gcra`: the rate algorithm; :mod:`.keys`: counter key names with cluster hash tags;
- :mod:`.backend`: the store protocol; :mod:`.memory` and :mod:`.redis_backend` (+
  :mod:`.scripts`, its Lua) implement it; :mod:`.runtime` shares one across a reload;
- :mod:`.leases`: concurrent-connection slots that expire unless refreshed;
- :mod:`.plugin`: the hooks; :mod:`.admin`: ``ratelimit.show``/``reset``;
  :mod:`.metrics`: ``elemta_ratelimit_*``.
"""
