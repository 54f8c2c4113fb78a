"""The start-up heap of a process this package runs itself, frozen out of the collector's reach.

Why: ``rm-service serve`` and ``rm-service grade`` import and build all they need (the gates'
pattern tables, pydantic's schemas, FastAPI's routes, the graders) before the first record, and
all of it lives as long as the process. Each of CPython's full collections walks that whole
heap again, and on a cheap reward they were a visible share of a record's cost (see
``docs/benchmarks.md``). Frozen (:func:`gc.freeze`), those objects are left out of every later
collection; what requests and records allocate is collected as before. Only for processes the
package starts itself: a library call never freezes its caller's heap.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_heap"]


def freeze_startup_heap() -> None:
    """Collect what start-up left as garbage (so it is not kept for good), then freeze the rest."""
    gc.collect()
    gc.freeze()
