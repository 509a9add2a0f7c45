"""Recommendations: products related by category to what the shopper looks at or has."""
