"""The cart service: one cart per user in Redis, priced live from products through a cache."""
