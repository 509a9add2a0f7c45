"""The currency service: converts cents between currencies at the rates of a shipped table."""
