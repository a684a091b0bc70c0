"""Writes docker compose's secrets (``make secrets``): the env file and the broker's users.

    python deploy/compose/write_secrets.py [--env-file .env] [--definitions PATH]

The env file (``.env`` beside docker-compose.yml, git-ignored; compose reads it by itself)
gets fresh random keys and passwords, once: an existing one is kept, since its
MAILBOX_SECRET_KEY decrypts the mailbox passwords already stored and its passwords are
the ones the data volumes were created with. The RabbitMQ definitions (one user per
service, one for crmctl, an administrator: ``deploy/compose/rabbitmq/definitions.json``,
git-ignored, loaded by the broker at boot) are rewritten from the env file every time.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from services.keys import fresh_keys  # noqa: E402
from shared.messaging.permissions import (  # noqa: E402
    SERVICES,
    USERS,
    definitions,
    password_variable,
    passwords_from,
    user_definition,
)

ENV_FILE = ROOT / ".env"
DEFINITIONS = ROOT / "deploy/compose/rabbitmq/definitions.json"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "RABBITMQ_ADMIN_PASSWORD"  # noqa: S105 - the variable's name
ERLANG_COOKIE = "RABBITMQ_ERLANG_COOKIE"
MONGODB_ROOT_PASSWORD = "MONGODB_ROOT_PASSWORD"  # noqa: S105 - the variable's name
MONGODB_KEYFILE = "MONGODB_KEYFILE"


def mongodb_password_variable(service: str) -> str:
    return f"{service.upper()}_MONGODB_PASSWORD"


def fresh_env() -> dict[str, str]:
    """Every secret compose interpolates, random."""
    found = fresh_keys()
    for user in USERS:
        found[password_variable(user)] = secrets.token_hex(24)
    found[ADMIN_PASSWORD] = secrets.token_hex(24)
    found[ERLANG_COOKIE] = secrets.token_hex(24)  # the cluster's nodes authenticate each other
    found[MONGODB_ROOT_PASSWORD] = secrets.token_hex(24)
    # The replica set's members authenticate each other with it (docker-compose.cluster.yml):
    # base64 characters only, as mongod's --keyFile wants them.
    found[MONGODB_KEYFILE] = base64.b64encode(secrets.token_bytes(96)).decode()
    for service in SERVICES:
        found[mongodb_password_variable(service)] = secrets.token_hex(24)
    return found


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.partition("=") for line in path.read_text().splitlines())
    return {k.strip(): v.strip() for k, sep, v in pairs if sep and not k.startswith("#")}


def write_private(path: Path, text: str) -> None:
    """Readable by its owner only, from the first byte on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def broker_definitions(env: dict[str, str]) -> dict[str, object]:
    """The users of shared/messaging/permissions.py, plus an administrator: a broker that
    loads definitions at boot creates no default user."""
    found = definitions(passwords_from(env))
    admin = user_definition(ADMIN_USER, env[ADMIN_PASSWORD], tags=["administrator"])
    found["users"] = [*found["users"], admin]
    found["permissions"] = [
        *found["permissions"],
        {"user": ADMIN_USER, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
    ]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, default=ENV_FILE)
    parser.add_argument("--definitions", type=Path, default=DEFINITIONS)
    args = parser.parse_args()
    if args.env_file.exists():
        sys.stdout.write(f"kept {args.env_file} (delete it for new keys)\n")
        added = {k: v for k, v in fresh_env().items() if k not in read_env(args.env_file)}
        if added:  # secrets this version needs that an older .env lacks
            with args.env_file.open("a") as f:
                f.writelines(f"{name}={value}\n" for name, value in added.items())
            sys.stdout.write(f"added {', '.join(added)} to {args.env_file}\n")
    else:
        lines = [f"{name}={value}\n" for name, value in fresh_env().items()]
        header = "# Written by `make secrets`: keep it out of git and safe (it decrypts mail).\n"
        write_private(args.env_file, header + "".join(lines))
        sys.stdout.write(f"wrote {args.env_file}\n")
    env = read_env(args.env_file)
    # Readable by the broker's own user in its container; it holds salted hashes only.
    args.definitions.write_text(json.dumps(broker_definitions(env), indent=2) + "\n")
    sys.stdout.write(f"wrote {args.definitions}\n")


if __name__ == "__main__":
    main()
