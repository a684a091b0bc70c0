"""Assembles the mailsync service. Run with ``faststream run services.mailsync.main:app``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from faststream.asgi import AsgiFastStream

from services.mailsync.copies import FirmCopies
from services.mailsync.destinations import Destinations
from services.mailsync.entrypoints import register_commands, register_events, register_firm_events
from services.mailsync.imap_health import mailboxes_syncing
from services.mailsync.ingest import Ingestor
from services.mailsync.mailboxes import Mailboxes
from services.mailsync.projection import AddressFollower
from services.mailsync.replies import SmtpConfig
from services.mailsync.repository import FirmSettings, SyncedAddresses
from services.mailsync.secrets import SecretBox
from services.mailsync.service import MailsyncService
from services.mailsync.settings import MailsyncSettings
from services.mailsync.store import MailStore
from services.mailsync.worker import MailboxWorker, Supervisor, WorkerFactory
from shared.contracts.envelope import EventPayload
from shared.contracts.events import AttachmentSaved, EmailReceived
from shared.runtime import Runtime, build_app, build_runtime
from shared.settings import ServiceSettings
from shared.storage.leases import Lease, Leases
from shared.storage.mongo import Document

PUBLISHES: tuple[type[EventPayload], ...] = (EmailReceived, AttachmentSaved)


def smtp_config(settings: MailsyncSettings) -> SmtpConfig:
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=password,
        security=settings.smtp_security(),
        timeout=settings.smtp_timeout_seconds,
    )


@dataclass
class Mailsync:
    """The service's parts, assembled once (tests drive them without the broker)."""

    settings: MailsyncSettings
    synced: SyncedAddresses
    follower: AddressFollower
    mailboxes: Mailboxes
    firms: FirmSettings
    copies: FirmCopies
    store: MailStore
    ingestor: Ingestor
    service: MailsyncService
    leases: Leases
    make_worker: WorkerFactory
    supervisor: Supervisor = field(init=False)

    def __post_init__(self) -> None:
        self.supervisor = self.new_supervisor()

    def new_supervisor(self) -> Supervisor:
        """A supervisor as another replica would run it (on the same database)."""
        return Supervisor(
            self.mailboxes,
            self.leases,
            self.make_worker,
            lease_duration=timedelta(seconds=self.settings.lease_seconds),
            poll_seconds=self.settings.poll_seconds,
        )

    async def ensure_indexes(self) -> None:
        await self.synced.ensure_indexes()
        await self.mailboxes.ensure_indexes()
        await self.store.ensure_indexes()


def assemble(runtime: Runtime, config: MailsyncSettings) -> Mailsync:
    synced = SyncedAddresses(runtime.db)
    mailboxes = Mailboxes(runtime.db)
    runtime.health.depend_on("imap", mailboxes_syncing(mailboxes.collection))
    firms = FirmSettings(runtime.db)
    copies = FirmCopies(runtime.db)
    relay = runtime.with_outbox([runtime.db["messages"], runtime.db["documents"]])
    store = MailStore(runtime.db, relay)
    ingestor = Ingestor(
        store, synced, firms, mailboxes, max_attachment_bytes=config.max_attachment_bytes
    )
    secrets = SecretBox(config.mailbox_secret_key.get_secret_value())
    destinations = Destinations(config.allowed_servers())
    service = MailsyncService(
        mailboxes,
        firms,
        store,
        ingestor,
        secrets,
        smtp_config(config),
        copies=copies,
        imap_timeout=config.imap_timeout_seconds,
        destinations=destinations,
    )

    def make_worker(mailbox: Document, lease: Lease) -> MailboxWorker:
        return MailboxWorker(
            mailbox,
            lease,
            mailboxes=mailboxes,
            synced=synced,
            ingestor=ingestor,
            secrets=secrets,
            poll_seconds=config.poll_seconds,
            timeout=config.imap_timeout_seconds,
            destinations=destinations,
            reconnect_max_seconds=config.reconnect_max_seconds,
            max_message_bytes=config.max_message_bytes,
        )

    return Mailsync(
        config,
        synced,
        AddressFollower(synced, mailboxes),
        mailboxes,
        firms,
        copies,
        store,
        ingestor,
        service,
        Leases(mailboxes.collection, runtime.clock),
        make_worker,
    )


def bootstrap(settings: ServiceSettings | None = None) -> tuple[Runtime, AsgiFastStream]:
    config = MailsyncSettings.from_service_settings(settings)
    runtime = build_runtime("mailsync", config, PUBLISHES)
    parts = assemble(runtime, config)
    register_events(runtime.events, parts.follower)
    register_firm_events(runtime.events, parts.copies)
    register_commands(runtime.commands, parts.service)
    runtime.startup += [parts.ensure_indexes, parts.supervisor.start]
    runtime.shutdown.insert(0, parts.supervisor.stop)
    # After the handlers: refuse commands naming unknown staff (shared/messaging/staff.py).
    runtime.know_staff()
    app = build_app(
        runtime,
        description="Connected IMAP mailboxes, the addresses synced into each account, "
        "synced mail with its threads and saved attachments.",
    )
    return runtime, app


runtime, app = bootstrap()
