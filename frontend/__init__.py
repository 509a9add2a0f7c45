"""The web shop: server-rendered pages that call only the gateway's public API."""
