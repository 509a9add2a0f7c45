"""The checkout service: the stateless saga that turns a cart into a paid order."""
