"""products: the catalog, stock counters and stock reservations (SQLite)."""
