"""Ads: one contextual ad by category, from a shipped table."""
