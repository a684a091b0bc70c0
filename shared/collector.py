"""CPython's cyclic garbage collector, set for a long-running service.

Profiled during seeding, the collector (``gc_collect_main``) was 10-18 % of each
service's CPU, for two reasons:

- What start-up builds (modules, pydantic's validators, FastStream's and PyMongo's
  objects, the AsyncAPI document) lives as long as the process, yet every full
  collection walks all of it again. :func:`gc.freeze` moves it out of the collector's
  reach for good.
- A young collection ran every 700 net allocations of container objects: every few
  messages, each envelope being a few hundred objects. Most of them are freed by their
  reference counts long before a collection would find them, so collecting less often
  finds the same garbage for less work. Only garbage in reference cycles waits longer, a
  few thousand objects at most.

Reference counting still frees everything that is not in a cycle at once: none of this
changes what is kept, only how often cycles are looked for.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000
"""Net allocations of container objects between two young collections (CPython: 700)."""


def settle_collector() -> None:
    """Collect once, freeze what survives (start-up's objects), then collect less often.

    Call once the service has started: anything frozen is never collected again.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
