"""Directory domain: departments, people, data administrators, machine identities (standard library only)."""
