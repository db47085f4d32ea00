"""Raw Redis baseline: a bare Lua lease claim and a fenced Lua completion through redis-py
(hiredis parser, one connection per worker, no library).

The claim pops the best items of one ready sorted set, gives each an INCR token and a lease
expiry from TIME; the completion checks id, token, status and expiry in its script. Its keys live
under `<prefix>_raw` (the URL's `prefix` option, default `workclaim`).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local expires = string.format('%d', now + 30000000)
local popped = redis.call('ZPOPMIN', KEYS[1], ARGV[1])
local out = {}
for i = 1, #popped, 2 do
  local id = popped[i]
  local token = redis.call('INCR', KEYS[2])
  redis.call('HSET', KEYS[3] .. id, 'status', 'claimed', 'token', token, 'expires_at', expires)
  redis.call('ZADD', KEYS[4], expires, id)
  out[#out + 1] = tonumber(id)
  out[#out + 1] = token
end
return out
"""

COMPLETE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local key = KEYS[1] .. ARGV[1]
local f = redis.call('HMGET', key, 'status', 'token', 'expires_at')
if f[1] ~= 'claimed' or f[2] ~= ARGV[2] or tonumber(f[3]) <= now then return 0 end
redis.call('HSET', key, 'status', 'done')
redis.call('HDEL', key, 'expires_at')
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


def _split(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    prefix = dict(query).get("prefix", "workclaim") + "_raw"
    rest = [(k, v) for k, v in query if k != "prefix"]
    return urlunsplit(parts._replace(query=urlencode(rest))), prefix


def _keys(prefix: str) -> tuple[str, str, str, str]:
    """ready zset, token counter, item hash key stem, leases zset."""
    return f"{prefix}:ready", f"{prefix}:tokens", f"{prefix}:item:", f"{prefix}:leases"


def prefill(url: str, n: int) -> None:
    """Delete the raw keys (SCAN + UNLINK under the raw prefix) and insert n queued items."""
    bare, prefix = _split(url)
    client = redis.Redis.from_url(bare)
    try:
        stale = list(client.scan_iter(match=f"{prefix}:*", count=1_000))
        for start in range(0, len(stale), 500):
            client.unlink(*stale[start : start + 500])
        ready, _, stem, _ = _keys(prefix)
        for start in range(1, n + 1, 1_000):
            pipe = client.pipeline(transaction=False)
            ids = range(start, min(start + 1_000, n + 1))
            for item_id in ids:
                pipe.hset(f"{stem}{item_id}", mapping={"payload": "{}", "status": "queued"})
            pipe.zadd(ready, {str(item_id): item_id for item_id in ids})
            pipe.execute()
    finally:
        client.close()


class RedisRawWorker:
    """One connection running the two scripts by SHA."""

    def __init__(self, url: str) -> None:
        bare, prefix = _split(url)
        self.client = redis.Redis.from_url(bare, decode_responses=True)
        self.ready, self.tokens, self.stem, self.leases = _keys(prefix)
        self.claim_script = self.client.register_script(CLAIM)
        self.complete_script = self.client.register_script(COMPLETE)

    def claim(self, batch: int) -> list[tuple[int, int]]:
        flat = self.claim_script(
            keys=[self.ready, self.tokens, self.stem, self.leases], args=[batch]
        )
        return [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    def complete(self, item_id: int, token: int) -> None:
        self.complete_script(keys=[self.stem, self.leases], args=[item_id, token])

    def close(self) -> None:
        self.client.close()


def open_worker(url: str) -> RedisRawWorker:
    """A raw worker on its own connection."""
    return RedisRawWorker(url)
