"""The account list (crm) and the pending-activation list (identity) at size.

Each shape is one filtered, sorted page of 50, asked ``requests`` times one after the
other at idle (as a person paging through the UI would, or ``crmctl list-accounts``
and ``crmctl pending``): request sent -> reply received.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.output import Progress
from shared.cli.client import Client
from shared.contracts import crm
from shared.contracts import identity as idn
from shared.contracts.commands import Command

PAGE = 50


@dataclass(frozen=True)
class ListShape:
    label: str
    query: Callable[[str], Command]  # firm id -> the query


@dataclass
class ListTiming:
    """Seconds per request of one shape, and how many items matched (the reply's total)."""

    seconds: list[float]
    total: int


SHAPES = (
    ListShape(
        "accounts pending_activation by name",
        lambda firm: crm.ListAccounts(
            firm_id=firm,
            actor="bench",
            login_status=crm.LoginStatus.PENDING_ACTIVATION,
            sort=crm.AccountSort.NAME,
            descending=False,
            limit=PAGE,
        ),
    ),
    ListShape(
        "accounts notify on by last login",
        lambda firm: crm.ListAccounts(
            firm_id=firm, actor="bench", notify=True, sort=crm.AccountSort.LAST_LOGIN, limit=PAGE
        ),
    ),
    ListShape(
        "pending activation by sent at",
        lambda firm: idn.ListPendingActivations(
            firm_id=firm, actor="bench", sort=idn.PendingSort.SENT_AT, limit=PAGE
        ),
    ),
    ListShape(
        "pending invited by email",
        lambda firm: idn.ListPendingActivations(
            firm_id=firm,
            actor="bench",
            filter=idn.PendingFilter.INVITED,
            sort=idn.PendingSort.EMAIL,
            descending=False,
            limit=PAGE,
        ),
    ),
)


async def _total(client: Client, query: Command) -> int:
    if isinstance(query, crm.ListAccounts):
        return (await client.call(query, crm.AccountList)).total
    return (await client.call(query, idn.PendingActivations)).total


async def list_latencies(
    client: Client, shape: ListShape, firm_id: str, requests: int, budget: float = 60.0
) -> ListTiming:
    """``requests`` sequential requests of one shape; the total of the last reply.

    Stops early after ``budget`` seconds (a slow list must not stretch the whole run):
    the figure then says how many requests it is based on.
    """
    query = shape.query(firm_id)
    progress = Progress(shape.label, requests, every=5)
    seconds: list[float] = []
    total = 0
    started_all = time.monotonic()
    while len(seconds) < requests and time.monotonic() - started_all < budget:
        started = time.perf_counter()
        total = await _total(client, query)
        seconds.append(time.perf_counter() - started)
        progress.show(len(seconds), f"last {seconds[-1] * 1000:.0f} ms")
    progress.show(len(seconds), f"{total} matching", force=True)
    return ListTiming(seconds, total)
