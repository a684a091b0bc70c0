"""One RabbitMQ user per service, and one for the staff CLI: what each may do on the bus.

The broker user is the trust boundary. A service's user may publish only events under its
own name (topic permission on ``integration.events``: crm's user publishing
``identity.user.activated`` is refused with ACCESS_REFUSED), consume only its own
queues, and declare only what it declares at start-up. In detail, for service ``s``:

- configure (declare): the shared exchanges (``integration.events``, ``integration.dead-letter``,
  ``integration.unroutable``) and queue ``integration.unroutable``, its own queues
  (``s.events``, ``s.commands``, ``s.dead-letter``) and the command queues it sends to one
  way (it declares them so a command waits there before their service ever ran);
- write: the shared exchanges (events; its explicit dead letters; the alternate exchange,
  which the broker checks when it routes an unroutable event there), the default
  exchange ``amq.default`` (command replies go to the caller's reply queue through it,
  and commands to ``<service>.commands``), and its own queues (binding them);
- read: the shared exchanges (binding from them) and its own ``s.events``/``s.commands``.

The broker dead-letters (x-dead-letter-exchange) and routes to the alternate exchange as
itself. What permissions cannot close: RabbitMQ checks a publish through the default
exchange against ``amq.default`` only, not the queue it lands in, so a service's user can
still put a command on another service's queue (commands ride the default exchange).
Commands carry the staff actor the CLI asserts; docs/security.md says how a staff front
end authenticates staff before it sends them.

The staff CLI (``crmctl``) sends commands to every service, publishes events (a
NotificationRequested on behalf of another system, a replayed dead letter) under any
routing key, and reads and replays the dead-letter queues.

``python -m shared.messaging.permissions definitions`` prints the RabbitMQ definitions
(users, permissions, topic permissions) for passwords in the environment
(``<USER>_RABBITMQ_PASSWORD``): ``deploy/local.sh`` imports them, ``make secrets`` writes
them for docker compose.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.messaging.topology import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    UNROUTABLE_EXCHANGE,
    UNROUTABLE_QUEUE,
    commands_queue,
    dead_letter_queue_name,
)

SERVICES = ("crm", "identity", "notification", "mailsync")
STAFF_CLI = "crmctl"
USERS = (*SERVICES, STAFF_CLI)
DEFAULT_EXCHANGE = "amq.default"
SHARED_EXCHANGES = (EVENTS_EXCHANGE.name, DEAD_LETTER_EXCHANGE.name, UNROUTABLE_EXCHANGE.name)
# Command queues a service declares because it sends to them one way (send_one_way):
# identity hands invitation links to notification (services/identity/courier.py).
ONE_WAY_TARGETS: Mapping[str, tuple[str, ...]] = {"identity": ("notification",)}
NOTHING = "^$"


@dataclass(frozen=True)
class Grant:
    """A broker user's permissions on a virtual host; patterns are RabbitMQ regexes."""

    user: str
    configure: str
    write: str
    read: str
    publishes: str
    """Routing keys the user may publish on integration.events (a topic permission)."""


def exactly(names: Iterable[str]) -> str:
    """A pattern matching these resource names and nothing else."""
    unique = dict.fromkeys(names)  # in order, once each
    return "^(" + "|".join(re.escape(name) for name in unique) + ")$"


def service_grant(service: str) -> Grant:
    own = (f"{service}.events", commands_queue(service).name, dead_letter_queue_name(service))
    sends_to = [commands_queue(t).name for t in ONE_WAY_TARGETS.get(service, ())]
    return Grant(
        user=service,
        configure=exactly([*SHARED_EXCHANGES, UNROUTABLE_QUEUE.name, *own, *sends_to]),
        write=exactly([*SHARED_EXCHANGES, DEFAULT_EXCHANGE, UNROUTABLE_QUEUE.name, *own]),
        read=exactly([*SHARED_EXCHANGES, *own[:2]]),
        publishes=f"^{re.escape(service)}\\.",
    )


def staff_cli_grant() -> Grant:
    dead_letters = [dead_letter_queue_name(s) for s in SERVICES]
    return Grant(
        user=STAFF_CLI,
        # crmctl dead-letters declares the queue it reads (it exists from then on).
        configure=exactly([*dead_letters, UNROUTABLE_QUEUE.name]),
        write=exactly([EVENTS_EXCHANGE.name, DEFAULT_EXCHANGE]),
        read=exactly([*dead_letters, UNROUTABLE_QUEUE.name]),
        publishes=".*",
    )


def grants() -> list[Grant]:
    return [*(service_grant(s) for s in SERVICES), staff_cli_grant()]


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def password_variable(user: str) -> str:
    return f"{user.upper()}_RABBITMQ_PASSWORD"


def user_definition(name: str, password: str, tags: Iterable[str] = ()) -> dict[str, Any]:
    return {
        "name": name,
        "password_hash": password_hash(password),
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": list(tags),
    }


def definitions(passwords: Mapping[str, str], vhost: str = "/") -> dict[str, Any]:
    """RabbitMQ definitions (rabbitmqctl import_definitions, or load_definitions at boot)."""
    chosen = grants()
    return {
        "users": [user_definition(g.user, passwords[g.user]) for g in chosen],
        "vhosts": [{"name": vhost}],
        "permissions": [
            {
                "user": g.user,
                "vhost": vhost,
                "configure": g.configure,
                "write": g.write,
                "read": g.read,
            }
            for g in chosen
        ],
        "topic_permissions": [
            {
                "user": g.user,
                "vhost": vhost,
                "exchange": EVENTS_EXCHANGE.name,
                "write": g.publishes,
                "read": ".*",
            }
            for g in chosen
        ],
    }


def passwords_from(environ: Mapping[str, str]) -> dict[str, str]:
    missing = [password_variable(u) for u in USERS if not environ.get(password_variable(u))]
    if missing:
        raise SystemExit(f"set {', '.join(missing)}")
    return {u: environ[password_variable(u)] for u in USERS}


if __name__ == "__main__":
    if sys.argv[1:2] != ["definitions"]:
        raise SystemExit("usage: python -m shared.messaging.permissions definitions [VHOST]")
    vhost = sys.argv[2] if len(sys.argv) > 2 else "/"
    json.dump(definitions(passwords_from(os.environ), vhost), sys.stdout, indent=2)
    sys.stdout.write("\n")
