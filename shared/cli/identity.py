"""crmctl commands that talk to the identity service (invitations, pending activation)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add identity's commands to ``crmctl``."""
