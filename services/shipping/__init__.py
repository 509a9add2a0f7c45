"""The shipping service: quotes a cart to an address, and ships a paid order."""
