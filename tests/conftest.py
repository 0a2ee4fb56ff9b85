"""Settings every test process (and every service a test starts) shares."""

import os

# New password hashes at argon2's cheapest cost: the suite creates hundreds of logins, and each standard hash
# takes 64 MiB and tens of milliseconds of both cores. Production refuses this (DirectorySettings); hashes say
# their own cost, so verification is the same code either way.
os.environ.setdefault("DIRECTORY_PASSWORD_HASH_COST", "cheapest")
