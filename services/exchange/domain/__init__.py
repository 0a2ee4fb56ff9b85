"""Exchange domain: departments' records held by the center (standard library only)."""
