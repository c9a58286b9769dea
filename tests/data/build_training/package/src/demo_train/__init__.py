"""A tiny training package."""
