"""After start-up, what exists is frozen and young collections are rarer."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from shared.collector import YOUNG_THRESHOLD, settle_collector


@pytest.fixture
def collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector")
def test_start_up_s_objects_are_frozen_and_young_collections_rarer() -> None:
    before = gc.get_threshold()
    built_at_start_up = {"kept": ["for the process's life"]}

    settle_collector()

    assert gc.get_freeze_count() > 0
    assert gc.is_tracked(built_at_start_up)
    assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])


@pytest.mark.usefixtures("collector")
def test_cycles_made_after_start_up_are_still_collected() -> None:
    settle_collector()

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    first = weakref.ref(a)
    del a, b
    assert first() is not None  # a cycle: reference counting alone keeps it

    gc.collect()

    assert first() is None
