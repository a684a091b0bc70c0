"""A service that does nothing with what it consumes: the cost of the messaging itself.

Built like the four services (``shared.runtime``: the same broker options, middlewares,
prefetch and filters), with one handler that returns at once. It consumes only
``bench.event_floor.ROUTING_KEY``, which no service publishes, so the product's traffic
never reaches its queue. Importing this module builds the service: only its process
does. ``bench.event_floor`` runs it with ``faststream run bench.floor_service:app``.

No ``from __future__ import annotations``: FastStream reads the handler's annotation at
run time to validate messages.
"""

from bench.event_floor import NAME, ROUTING_KEY
from shared.contracts.envelope import Envelope
from shared.contracts.events import AccountCreated
from shared.runtime import build_app, build_runtime
from shared.settings import ServiceSettings

runtime = build_runtime(NAME, ServiceSettings(), ())


@runtime.events.handle(AccountCreated, routing_key=ROUTING_KEY)
async def on_account_created(envelope: Envelope[AccountCreated]) -> None:
    """Validated like any event, then nothing."""


app = build_app(runtime, description="The benchmark's no-op consumer.")
