"""Notifier domain: who is told what, and when (standard library only)."""
