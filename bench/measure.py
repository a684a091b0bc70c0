"""The product measurements: bulk invitations, single toggles, notification fan-out.

Each one is bounded in time: a wait that makes no progress for ``stall`` seconds, or
exceeds its overall timeout, ends the measurement with a clear error.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.catcher import CatcherClient
from bench.output import Progress, say
from bench.seed import Seeded, SeededAddress
from shared.cli.client import Client, CommandRefused
from shared.contracts import crm as cmd
from shared.contracts.categories import NotificationCategory
from shared.contracts.envelope import Envelope
from shared.contracts.events import NotificationRequested, SettingAction
from shared.messaging.commands import CommandTimeout


class MeasurementFailed(RuntimeError):
    """A measurement could not complete (the reason says why)."""


@dataclass(frozen=True)
class Throughput:
    emails: int
    expected: int
    seconds: float  # from the request to the last email's arrival

    @property
    def rate(self) -> float:
        return self.emails / self.seconds if self.seconds > 0 else 0.0


async def emails_arrive(
    catcher: CatcherClient,
    baseline: int,
    expected: int,
    label: str,
    *,
    stall: float,
    timeout: float,
) -> tuple[int, float]:
    """Wait until ``expected`` emails arrived after ``baseline``; (count, last arrival)."""
    progress = Progress(label, expected, every=2)
    deadline = time.monotonic() + timeout
    seen, moved = 0, time.monotonic()
    while seen < expected:
        now_seen = await catcher.total() - baseline
        if now_seen != seen:
            seen, moved = now_seen, time.monotonic()
        progress.show(seen)
        if time.monotonic() - moved > stall or time.monotonic() > deadline:
            raise MeasurementFailed(f"{label}: {seen} of {expected} emails arrived, then nothing")
        await asyncio.sleep(0.2)
    progress.show(seen, force=True)
    return seen, _last_arrival(await catcher.kinds())


def _last_arrival(kinds: dict[str, dict[str, float]]) -> float:
    return max((k["last"] for k in kinds.values()), default=0.0)


# --- bulk Login with invitations -------------------------------------------------------


async def run_bulk(
    client: Client,
    firm_id: str,
    action: SettingAction,
    *,
    invite: bool,
    stall: float,
    timeout: float,
) -> tuple[cmd.BulkUpdateProgress, float]:
    """Request a bulk Login change for every account and follow it to its end."""
    command = cmd.RequestBulkUpdate(
        firm_id=firm_id,
        actor="bench",
        filter=cmd.BulkFilter.ALL,
        login=action,
        send_invitations=invite,
    )
    started = time.time()
    try:
        accepted = await client.call(command, cmd.BulkUpdateAccepted)
    except CommandTimeout as exc:
        raise MeasurementFailed(f"crm does not answer RequestBulkUpdate: {exc}") from exc
    except CommandRefused as exc:
        raise MeasurementFailed(f"crm refused RequestBulkUpdate: {exc.reply}") from exc
    say(f"bulk update {accepted.job_id} accepted (login {action.value}, invite={invite})")
    return await _follow(client, firm_id, accepted.job_id, stall, timeout), started


async def _follow(
    client: Client, firm_id: str, job_id: str, stall: float, timeout: float
) -> cmd.BulkUpdateProgress:
    """Poll the job until it completes; fail once it made no progress for ``stall`` s."""
    query = cmd.GetBulkUpdate(firm_id=firm_id, job_id=job_id)
    deadline = time.monotonic() + timeout
    line = Progress("bulk accounts done", None, every=2)
    seen, moved = (-1, -1), time.monotonic()
    while True:
        progress = await client.call(query, cmd.BulkUpdateProgress)
        line.total = progress.accounts_total
        extra = f"{progress.invitations_sent} invitations, {progress.error_count} errors"
        line.show(progress.accounts_done, extra)
        if progress.state is cmd.BulkUpdateState.COMPLETED:
            line.show(progress.accounts_done, extra, force=True)
            return progress
        now = time.monotonic()
        if (progress.accounts_done, progress.invitations_sent) != seen:
            seen, moved = (progress.accounts_done, progress.invitations_sent), now
        if now - moved > stall or now > deadline:
            raise MeasurementFailed(
                f"bulk update {job_id}: {progress.accounts_done} of "
                f"{progress.accounts_total} accounts done, then no progress"
            )
        await asyncio.sleep(0.5)


async def bulk_invitations(
    client: Client, catcher: CatcherClient, seeded: Seeded, *, stall: float, timeout: float
) -> Throughput:
    """Login on with invitations for every address: request -> last invitation email."""
    baseline = await catcher.total()
    progress, started = await run_bulk(
        client, seeded.firm_id, SettingAction.ENABLE, invite=True, stall=stall, timeout=timeout
    )
    if progress.error_count:
        say(f"  {progress.error_count} errors, e.g. {progress.errors[:3]}")
    expected = progress.invitations_sent
    if expected == 0:
        raise MeasurementFailed("the bulk update sent no invitations")
    count, last = await emails_arrive(
        catcher, baseline, expected, "invitation emails", stall=stall, timeout=timeout
    )
    return Throughput(count, expected, last - started)


# --- single toggles at idle -------------------------------------------------------------


async def toggle_latencies(
    client: Client, catcher: CatcherClient, seeded: Seeded, toggles: int, *, timeout: float
) -> list[float]:
    """Login on with an invitation, one address at a time: command sent -> email arrived.

    Each address's Login is turned off again afterwards (no email), so the bulk run
    that follows finds every address off.
    """
    latencies: list[float] = []
    progress = Progress("toggles", toggles, every=5)
    for number in range(toggles):
        address = seeded.addresses[number % len(seeded.addresses)]
        before = len(await catcher.wait(address.email, 0, 0))
        started = time.time()
        await _toggle(client, seeded.firm_id, address, on=True)
        arrivals = await catcher.wait(address.email, before + 1, timeout)
        if len(arrivals) <= before:
            raise MeasurementFailed(f"no invitation to {address.email} within {timeout:.0f}s")
        latencies.append(arrivals[before] - started)
        await _toggle(client, seeded.firm_id, address, on=False)
        progress.show(number + 1, f"last {latencies[-1] * 1000:.0f} ms")
    return latencies


async def _toggle(client: Client, firm_id: str, address: SeededAddress, *, on: bool) -> None:
    command = cmd.ToggleLogin(
        firm_id=firm_id,
        actor="bench",
        account_id=address.account_id,
        contact_id=address.contact_id,
        address_id=address.address_id,
        enabled=on,
        send_invitation=on,
    )
    await client.call(command, cmd.SettingChanged)


# --- notification fan-out ---------------------------------------------------------------


async def fan_out(
    client: Client, catcher: CatcherClient, seeded: Seeded, *, stall: float, timeout: float
) -> Throughput:
    """NotificationRequested for every account, as a platform service publishes it."""
    baseline = await catcher.total()
    started = time.time()
    progress = Progress("NotificationRequested published", len(seeded.accounts), every=2)
    for number, account_id in enumerate(seeded.accounts, start=1):
        payload = NotificationRequested(
            account_id=account_id,
            category=NotificationCategory.DOCUMENT_UPLOADS,
            kind="document_uploaded",
            template_data={"document": "2025 annual accounts.pdf"},
        )
        envelope = Envelope.wrap(
            payload, firm_id=seeded.firm_id, aggregate_id=account_id, aggregate_version=1
        )
        await client.publish(envelope, "documents.notification.requested")
        progress.show(number)
    progress.show(len(seeded.accounts), force=True)
    expected = len(seeded.addresses)  # Notify is on for every seeded address
    count, last = await emails_arrive(
        catcher, baseline, expected, "notification emails", stall=stall, timeout=timeout
    )
    return Throughput(count, expected, last - started)
