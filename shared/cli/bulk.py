"""``crmctl bulk-update``: one change to every contact of many accounts, with a progress bar."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.cli.client import Client, connect
from shared.cli.common import Actor, Firm, Json, Url, console, print_json, run
from shared.contracts import crm as cmd
from shared.contracts.categories import NotificationCategory
from shared.contracts.events import SettingAction
from shared.contracts.types import SYSTEM_ACTOR

Action = Annotated[
    SettingAction, typer.Option(help="nothing, enable (for all contacts) or disable.")
]


async def follow(
    client: Client, firm_id: str, job_id: str, *, timeout: float, quiet: bool = False
) -> cmd.BulkUpdateProgress:
    """Poll a bulk update until it completes, drawing its progress; its final state."""
    query = cmd.GetBulkUpdate(firm_id=firm_id, job_id=job_id)
    deadline = time.monotonic() + timeout
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[changed]} addresses, {task.fields[invited]} invitations"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=quiet) as bar:
        task = bar.add_task(f"bulk update {job_id}", total=None, changed=0, invited=0)
        while True:
            progress = await client.call(query, cmd.BulkUpdateProgress)
            bar.update(
                task,
                total=progress.accounts_total,
                completed=progress.accounts_done,
                changed=progress.addresses_changed,
                invited=progress.invitations_sent,
            )
            if progress.state is cmd.BulkUpdateState.COMPLETED:
                return progress
            if time.monotonic() > deadline:
                raise TimeoutError(f"bulk update {job_id} still running after {timeout:.0f}s")
            await asyncio.sleep(0.5)


def report(progress: cmd.BulkUpdateProgress) -> None:
    console.print(
        f"{progress.accounts_done} accounts, {progress.addresses_changed} addresses changed, "
        f"{progress.invitations_sent} invitations sent, {progress.error_count} errors"
    )
    if progress.invitations_sent:
        console.print(
            f"invitation emails delivered: {progress.emails_delivered} of "
            f"{progress.invitations_sent} (the rest are still queued for the mail server)"
        )
    if progress.errors:
        table = Table("account", "reason", title="errors")
        for error in progress.errors:
            table.add_row(error.account_id or "", error.reason)
        console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``bulk-update`` and ``bulk-status`` to ``crmctl``."""

    @app.command("bulk-update")
    @run
    async def bulk_update(
        firm: Firm,
        account: Annotated[
            list[str] | None, typer.Option(help="An account id (repeat); or use --filter.")
        ] = None,
        filter_: Annotated[
            cmd.BulkFilter | None, typer.Option("--filter", help="Select accounts by their status.")
        ] = None,
        login: Action = SettingAction.NOTHING,
        send_invitations: Annotated[
            bool, typer.Option(help="With --login enable: invite now.")
        ] = False,
        message: Annotated[str | None, typer.Option(help="Invitations' personal message.")] = None,
        notify: Action = SettingAction.NOTHING,
        category: Annotated[
            list[NotificationCategory] | None,
            typer.Option(help="With --notify enable: categories (repeat); default all."),
        ] = None,
        email_sync: Action = SettingAction.NOTHING,
        signatory: Action = SettingAction.NOTHING,
        job_id: Annotated[
            str | None, typer.Option(help="Idempotency key: the same id never runs twice.")
        ] = None,
        wait: Annotated[bool, typer.Option(help="Follow the progress until it ends.")] = True,
        timeout: Annotated[float, typer.Option(help="Seconds to follow before giving up.")] = 3600,
        as_json: Json = False,
        actor: Actor = SYSTEM_ACTOR,
        url: Url = None,
    ) -> None:
        """Change Login, Notify, Email sync or Signatory for every contact of many accounts."""
        command = cmd.RequestBulkUpdate(
            firm_id=firm,
            actor=actor,
            job_id=job_id,
            account_ids=tuple(account or ()),
            filter=filter_,
            login=login,
            send_invitations=send_invitations,
            personal_message=message,
            notify=notify,
            notify_categories=frozenset(category) if category else None,
            email_sync=email_sync,
            signatory=signatory,
        )
        async with connect(url) as client:
            accepted = await client.call(command, cmd.BulkUpdateAccepted)
            if not as_json:
                console.print(f"bulk update {accepted.job_id} accepted")
            if not wait:
                if as_json:
                    print_json(accepted)
                return
            final = await follow(client, firm, accepted.job_id, timeout=timeout, quiet=as_json)
        if as_json:
            print_json(final)
        else:
            report(final)

    @app.command("bulk-status")
    @run
    async def bulk_status(firm: Firm, job_id: str, as_json: Json = False, url: Url = None) -> None:
        """Where a bulk update stands: invitations issued, their emails delivered, errors."""
        async with connect(url) as client:
            query = cmd.GetBulkUpdate(firm_id=firm, job_id=job_id)
            progress = await client.call(query, cmd.BulkUpdateProgress)
        if as_json:
            print_json(progress)
            return
        console.print(f"{progress.state.value}: {progress.accounts_done}/{progress.accounts_total}")
        report(progress)
