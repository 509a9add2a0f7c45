"""The order register: pending orders with price snapshots, then paid or cancelled, never back."""
