"""Whose address a request comes from: forwarded headers are trusted from configured proxies only.

Login throttling counts per client address, so the address must not be the client's
to choose. uvicorn (which ``faststream run`` serves the app with) replaces the peer
address with the one in ``X-Forwarded-For`` when the peer is listed in
``FORWARDED_ALLOW_IPS``, and when that is unset it trusts 127.0.0.1: any process on
the host, or a proxy there that passes the header through, could then pick a fresh
address for every attempt. identity's default is to trust nobody: an operator with
a proxy in front lists its addresses (or networks) in ``FORWARDED_ALLOW_IPS``.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

SETTING = "FORWARDED_ALLOW_IPS"


def trust_only_configured_proxies(environ: MutableMapping[str, str] = os.environ) -> str:
    """Make "nobody" the default of uvicorn's proxy list; returns the list in force.

    ``faststream run`` imports the app before it configures uvicorn, which reads the
    variable then, so setting the default while the app is built is in time.
    """
    return environ.setdefault(SETTING, "")
