"""One broker user per service, one for crmctl, and a message size limit, on a broker
deploy/local.sh starts (a private instance: ports and folder of its own).

The services run as their own users through the first path (crmctl's command, crm's
reply and events, identity's invitation handed one way to notification, the email), and
a user publishing another service's events is refused by the broker.
"""

from __future__ import annotations

import shlex
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused, ChannelPreconditionFailed

from shared.cli.client import connect
from shared.contracts.crm import SettingChanged
from shared.mailcatcher import MailCatcher
from shared.messaging.permissions import SERVICES, STAFF_CLI, USERS
from shared.messaging.topology import BROKER_MAX_MESSAGE_BYTES, EVENTS_EXCHANGE
from tests.infra import Infra, free_port, local_sh
from tests.scenario import account_with_contact
from tests.services import run_services

pytestmark = pytest.mark.e2e

QUORUM = {"x-queue-type": "quorum"}  # as the services declare their dead-letter queues


@dataclass
class PrivateBroker:
    """RabbitMQ as deploy/local.sh runs it, on ports and in a folder of its own."""

    env: dict[str, str]

    def local(self, *args: str) -> str:
        return local_sh(*args, env=self.env)

    def exported(self) -> dict[str, str]:
        """What `deploy/local.sh env` exports."""
        lines = [shlex.split(line) for line in self.local("env").splitlines()]
        return dict(words[1].split("=", 1) for words in lines if words[:1] == ["export"])

    def url_of(self, user: str) -> str:
        return self.exported()[f"{user.upper()}_RABBITMQ_URL"]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    state = tmp_path_factory.mktemp("broker-users")
    private = PrivateBroker(
        {
            "LOCAL_DIR": str(state),
            "LOCAL_AMQP_PORT": str(free_port()),
            "LOCAL_DIST_PORT": str(free_port()),
            "LOCAL_RABBIT_NODE": f"users{uuid.uuid4().hex[:6]}",
        }
    )
    try:
        private.local("up", "rabbitmq")
        yield private
    finally:
        private.local("down", "rabbitmq")


@pytest.fixture
async def crm_channel(broker: PrivateBroker) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(broker.url_of("crm"))
    async with connection:
        yield await connection.channel(publisher_confirms=True)


def test_up_creates_a_user_for_each_service_and_crmctl(broker: PrivateBroker) -> None:
    exported = broker.exported()
    for user in USERS:
        assert exported[f"{user.upper()}_RABBITMQ_URL"].startswith(f"amqp://{user}:")
    passwords = Path(broker.env["LOCAL_DIR"], "rabbitmq-users.env")
    assert passwords.stat().st_mode & 0o077 == 0, "the passwords are readable by others"


async def test_up_on_a_running_broker_restores_the_users_and_keeps_their_passwords(
    broker: PrivateBroker,
) -> None:
    before = broker.exported()
    broker.local("rabbitmqctl", "delete_user", "crm")  # as on a node started before users
    broker.local("up", "rabbitmq")
    assert broker.exported() == before
    connection = await aio_pika.connect(broker.url_of("crm"))
    await connection.close()


async def test_crm_cannot_publish_identity_events(
    crm_channel: aio_pika.abc.AbstractChannel,
) -> None:
    exchange = await crm_channel.declare_exchange(
        EVENTS_EXCHANGE.name, aio_pika.ExchangeType.TOPIC, durable=True
    )
    with pytest.raises(ChannelAccessRefused, match="ACCESS_REFUSED"):
        await exchange.publish(aio_pika.Message(b"{}"), routing_key="identity.user.activated")


async def test_crm_publishes_its_own_events(crm_channel: aio_pika.abc.AbstractChannel) -> None:
    exchange = await crm_channel.declare_exchange(
        EVENTS_EXCHANGE.name, aio_pika.ExchangeType.TOPIC, durable=True
    )
    confirmed = await exchange.publish(aio_pika.Message(b"{}"), routing_key="crm.firm.registered")
    assert confirmed is not None


async def test_crm_cannot_read_another_services_queue(
    broker: PrivateBroker, crm_channel: aio_pika.abc.AbstractChannel
) -> None:
    administrator = await aio_pika.connect(broker.exported()["RABBITMQ_URL"])
    async with administrator:
        channel = await administrator.channel()
        await channel.declare_queue("identity.dead-letter", durable=True, arguments=QUORUM)
    queue = await crm_channel.declare_queue("identity.dead-letter", passive=True)
    with pytest.raises(ChannelAccessRefused, match="ACCESS_REFUSED"):
        await queue.get(fail=False)


async def test_a_body_over_the_limit_is_refused_at_the_broker(
    crm_channel: aio_pika.abc.AbstractChannel,
) -> None:
    exchange = await crm_channel.declare_exchange(
        EVENTS_EXCHANGE.name, aio_pika.ExchangeType.TOPIC, durable=True
    )
    # What the services still dead-letter with a reason (over the contracts' 256 KiB) passes.
    await exchange.publish(aio_pika.Message(b"x" * 300_000), routing_key="crm.big.event")
    with pytest.raises(ChannelPreconditionFailed, match="max size"):
        await exchange.publish(
            aio_pika.Message(b"x" * (BROKER_MAX_MESSAGE_BYTES + 1)), routing_key="crm.big.event"
        )


async def test_the_services_run_the_first_path_as_their_own_users(
    broker: PrivateBroker, infra: Infra, tmp_path: Path
) -> None:
    """Declarations, events, commands and replies, the one-way handover: all permitted."""
    own = {s: {"RABBITMQ_URL": broker.url_of(s)} for s in SERVICES}
    with run_services(infra, tmp_path / "logs", own_env=own):
        async with connect(broker.url_of(STAFF_CLI), timeout=20) as client:
            s = await account_with_contact(client)
            await client.call(s.toggle_login(0), SettingChanged)
        to = s.address(0).email
        mail = MailCatcher(infra.catcher_dir)
        [invitation] = await mail.wait_for(
            lambda m: to in m.envelope_to and m.header("X-CRM-Kind") == "invitation"
        )
        assert "/activate?token=" in invitation.text()
