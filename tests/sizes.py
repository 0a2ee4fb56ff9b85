"""How big the suite's volume tests run: `make test` at a size that proves the behaviour in seconds,
`make test-full-size` (also in CI) at the size the platform meets in a city. Tests marked `full_size` run in both."""

import os

FULL_SIZE = os.environ.get("TEST_FULL_SIZE") == "1"
