"""``crmctl firm-settings``: show a firm's settings, or change some of them.

crm holds the firm's settings (GetFirm, ChangeFirmSettings, which tells every service
holding a copy); automatic attachment saving is mailsync's own setting of the firm.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from shared.cli.client import connect
from shared.cli.common import Firm, Json, Url, console, print_json, run
from shared.contracts import crm as cmd
from shared.contracts import mailsync

OffOr = "an address, or 'off'"


def register(app: typer.Typer) -> None:
    """Add ``firm-settings`` to ``crmctl``."""

    @app.command("firm-settings")
    @run
    async def firm_settings(
        firm: Firm,
        name: Annotated[str | None, typer.Option(help="The firm's name.")] = None,
        expiry_days: Annotated[int | None, typer.Option(help="Invitations expire after.")] = None,
        time_zone: Annotated[str | None, typer.Option(help="IANA zone, e.g. Europe/Oslo.")] = None,
        copy_emails_to: Annotated[str | None, typer.Option(help=f"Copies: {OffOr}.")] = None,
        reply_to: Annotated[str | None, typer.Option(help=f"Reply-To: {OffOr}.")] = None,
        logo_url: Annotated[str | None, typer.Option(help="https URL, or 'off'.")] = None,
        accent_color: Annotated[str | None, typer.Option(help="#rrggbb, or 'off'.")] = None,
        attachment_saving: Annotated[
            bool | None,
            typer.Option(
                "--attachment-saving/--no-attachment-saving",
                help="Save synced emails' attachments to the account's documents.",
            ),
        ] = None,
        as_json: Json = False,
        url: Url = None,
    ) -> None:
        """Show the firm's settings; with options, change those (every service is told)."""
        given = {
            "name": name,
            "invitation_expiry_days": expiry_days,
            "time_zone": time_zone,
            "copy_emails_to": copy_emails_to,
            "reply_to": reply_to,
            "logo_url": logo_url,
            "accent_color": accent_color,
        }
        changes = {k: v for k, v in given.items() if v is not None}
        # Bad input is refused before anything is sent.
        command = cmd.ChangeFirmSettings(firm_id=firm, **changes) if changes else None  # type: ignore[arg-type]
        async with connect(url) as client:
            await client.call(cmd.GetFirm(firm_id=firm), cmd.FirmView)  # unknown_firm first
            if command is not None:
                changed = await client.call(command, cmd.FirmSettingsChangedReply)
                if not as_json:
                    what = ", ".join(changed.changed) or "nothing (the values were already so)"
                    console.print(f"changed: {what}")
            if attachment_saving is not None:
                saving = mailsync.SetAttachmentSaving(firm_id=firm, enabled=attachment_saving)
                await client.call(saving, mailsync.AttachmentSavingSet)
            view = await client.call(cmd.GetFirm(firm_id=firm), cmd.FirmView)
            boxes = await client.call(mailsync.ListMailboxes(firm_id=firm), mailsync.Mailboxes)
        shown = view.model_dump(mode="json", exclude={"ok"})
        shown["attachment_saving"] = boxes.attachment_saving
        if as_json:
            print_json(shown)
            return
        table = Table("setting", "value", title=f"firm {view.firm_id}")
        for key, value in shown.items():
            if key != "firm_id":
                table.add_row(key, "off" if value in (None, False) else escape(str(value)))
        console.print(table)
