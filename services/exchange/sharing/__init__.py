"""Sharing: requests, decisions, disputes and grants, and the channels that open data only as a grant allows
(Art. 9, 14–16, 18–20)."""
