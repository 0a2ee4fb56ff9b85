"""Catalog domain: entries of the city's shared data catalog (standard library only)."""
