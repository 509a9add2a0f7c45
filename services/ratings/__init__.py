"""Ratings: shoppers who bought a product rate it, once per order line."""
