"""A service's interpreter once it is built (common.interpreter.settle, called by common.http.serve)."""

import gc
import sys

from common import interpreter


def test_a_settled_service_freezes_its_start_up_heap_and_takes_the_gil_back_from_worker_threads_soon() -> None:
    import services.exchange.main  # noqa: F401  # a whole service's modules, as serve() finds them

    before = sys.getswitchinterval()
    try:
        interpreter.settle()
        # a full collection no longer walks the ~100,000 objects start-up built (hundreds of ms when busy)
        assert gc.get_freeze_count() > 50_000
        # a worker thread busy with Python code hands the GIL back within half a millisecond, not 5 ms
        assert sys.getswitchinterval() <= 0.0005
    finally:
        gc.unfreeze()
        sys.setswitchinterval(before)
