"""Redis access: the cart hash ``cart:{user}`` and the product cache ``product:{id}``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import redis.asyncio as aioredis

CART_TTL_SECONDS = 30 * 24 * 3600
MAX_LINES = 100  # products answers at most 100 ids per lookup; orders takes at most 100 items

# Set one line, unless it is a new line and the cart is full (then false); the cart's expiry is
# refreshed, and its lines are answered as they are now (HGETALL's flat list).
_SET_LINE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0
    and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return false
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return redis.call('HGETALL', KEYS[1])
"""


def cart_key(user: str) -> str:
    return f"cart:{user}"


def product_key(product_id: str) -> str:
    return f"product:{product_id}"


async def lines(redis: aioredis.Redis, user: str) -> dict[str, int]:
    """The cart's lines: product id -> quantity."""
    raw = await redis.hgetall(cart_key(user))
    return {product_id: int(quantity) for product_id, quantity in raw.items()}


async def set_line(
    redis: aioredis.Redis, user: str, product_id: str, quantity: int
) -> dict[str, int] | None:
    """Set a line's quantity (one atomic step) and answer the cart's lines as they are then, in
    the same round trip; None when the cart already has MAX_LINES (nothing changed)."""
    flat = await redis.eval(
        _SET_LINE, 1, cart_key(user), product_id, quantity, MAX_LINES, CART_TTL_SECONDS
    )
    if flat is None:
        return None
    return {flat[i]: int(flat[i + 1]) for i in range(0, len(flat), 2)}


async def remove_lines(redis: aioredis.Redis, user: str, product_ids: Iterable[str]) -> None:
    ids = list(product_ids)
    if not ids:
        return
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hdel(cart_key(user), *ids)
        pipe.expire(cart_key(user), CART_TTL_SECONDS)
        await pipe.execute()


async def clear(redis: aioredis.Redis, user: str) -> None:
    await redis.delete(cart_key(user))


async def cached_products(redis: aioredis.Redis, product_ids: list[str]) -> list[str | None]:
    """The cached product JSON for each id, None where the cache has none."""
    return await redis.mget([product_key(pid) for pid in product_ids])


async def cache_products(redis: aioredis.Redis, products: Mapping[str, str], ttl: int) -> None:
    """Cache each product's JSON under ``product:{id}`` for ``ttl`` seconds."""
    async with redis.pipeline(transaction=False) as pipe:
        for product_id, raw in products.items():
            pipe.set(product_key(product_id), raw, ex=ttl)
        await pipe.execute()
