"""How a service's interpreter is tuned once it is built: its event loop answers probes and feeds the
consumers' heartbeats while worker threads check uploads and verify signatures."""

from __future__ import annotations

import gc
import sys

# The default 5 ms: each time the event loop gives up the GIL (a socket read or write, a random id, zlib), a
# worker thread busy with Python code keeps it that long; a probe passes through several such calls.
SWITCH_INTERVAL = 0.0005


def settle() -> None:
    """Call once, when the service is built and before it serves. What start-up built (modules, the app,
    schemas, about 100,000 objects) is frozen out of the garbage collector: a full collection then walks only
    what requests and batches made, instead of stopping the process for hundreds of milliseconds when the
    machine is busy. Worker threads give the GIL back to the event loop within SWITCH_INTERVAL."""
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL)
