"""Auditor domain: the access trail and its integrity (standard library only)."""
