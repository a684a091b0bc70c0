"""Fresh secret keys for the services: ``python -m services.keys`` prints them as NAME=value.

The services have no built-in keys (``shared/keys.py``). ``make secrets`` writes these
into the compose env file, ``deploy/services.sh`` into ``.local/secrets.env``, and the
tests and benchmarks give their processes a fresh set each run.
"""

from __future__ import annotations

import secrets
import sys

from cryptography.fernet import Fernet

from services.notification.links import banner_public_key


def fresh_keys() -> dict[str, str]:
    """Random keys for every key setting; the banner public key matches the link key."""
    link_key = secrets.token_hex(32)
    return {
        "INVITATION_TOKEN_KEY": secrets.token_hex(32),
        "NOTIFICATION_LINK_KEY": link_key,
        "BANNER_LINK_PUBLIC_KEY": banner_public_key(link_key.encode()),
        "MAILBOX_SECRET_KEY": Fernet.generate_key().decode(),
    }


if __name__ == "__main__":
    sys.stdout.writelines(f"{name}={value}\n" for name, value in fresh_keys().items())
