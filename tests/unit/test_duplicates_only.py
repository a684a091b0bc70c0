"""Telling a batch's duplicate keys from its other failures."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.errors import BulkWriteError

from shared.storage.mongo import DUPLICATE_KEY, duplicates_only


def failed(**details: Any) -> BulkWriteError:
    return BulkWriteError({"writeErrors": [], "writeConcernErrors": [], **details})


def test_the_positions_of_the_duplicate_keys_are_returned() -> None:
    exc = failed(writeErrors=[{"index": 1, "code": DUPLICATE_KEY}, {"index": 4, "code": 11000}])
    assert duplicates_only(exc) == [1, 4]


@pytest.mark.parametrize(
    "details",
    [
        {"writeErrors": [{"index": 0, "code": DUPLICATE_KEY}, {"index": 2, "code": 121}]},
        {"writeErrors": [{"index": 0, "code": DUPLICATE_KEY}], "writeConcernErrors": [{}]},
        {},
    ],
    ids=["another failure", "the write concern failed", "no write named"],
)
def test_anything_else_raises_the_error_itself(details: dict[str, Any]) -> None:
    exc = failed(**details)
    with pytest.raises(BulkWriteError) as raised:
        duplicates_only(exc)
    assert raised.value is exc
