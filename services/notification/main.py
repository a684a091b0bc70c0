"""Assembles the notification service.

Run with ``faststream run services.notification.main:app --host 127.0.0.1 --port 8003``.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from faststream.asgi import AsgiFastStream
from pymongo.asynchronous.collection import AsyncCollection

from services.notification.account_emails import AccountEmails, AccountMailRenderer
from services.notification.bounce_mailbox import BounceMailbox, BounceMailboxConfig
from services.notification.bounces import Bounces
from services.notification.deliveries import DeliveryRepository
from services.notification.delivery import Deliverer
from services.notification.digest import utc_now
from services.notification.digests import Clock, Digests, DigestScheduler
from services.notification.entrypoints import (
    register_account_email_commands,
    register_commands,
    register_digest_handlers,
    register_handlers,
    register_inbox_handlers,
    register_invitation_commands,
)
from services.notification.inbox import Inbox, InboxRepository
from services.notification.links import ActivationBannerLinks, UnsubscribeLinks
from services.notification.mailer import Mailer, SmtpConfig
from services.notification.rejections import Rejections
from services.notification.rendering import Renderer
from services.notification.repository import (
    AccountNames,
    FirmRepository,
    QuestionRepository,
    RecipientRepository,
)
from services.notification.service import NotificationService
from services.notification.settings import NotificationSettings
from services.notification.smtp_health import smtp_answers
from services.notification.unsubscribe import unsubscribe_page
from shared.contracts import events
from shared.contracts.crm import SettingChanged, UnsubscribeCategory
from shared.messaging.commands import send_command
from shared.runtime import Runtime, build_app, build_runtime
from shared.settings import ServiceSettings
from shared.storage.mongo import Document

SERVICE = "notification"
PUBLISHES = (events.NotificationDelivered, events.NotificationFailed, events.NotificationRejected)


def smtp_config(settings: NotificationSettings) -> SmtpConfig:
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        timeout_seconds=settings.smtp_timeout_seconds,
        connections=settings.smtp_connections,
        attempts=settings.smtp_attempts,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        security=settings.smtp_security(),
    )


def bounce_mailbox_of(
    settings: NotificationSettings, bounces: Bounces, deliveries: AsyncCollection[Document]
) -> BounceMailbox | None:
    """The reader of the bounce mailbox, when one is configured."""
    if not settings.bounce_imap_host:
        return None
    password = settings.bounce_imap_password
    config = BounceMailboxConfig(
        host=settings.bounce_imap_host,
        port=settings.bounce_imap_port,
        tls=settings.bounce_imap_tls,
        username=settings.bounce_imap_username or "",
        password=password.get_secret_value() if password else "",
        folder=settings.bounce_imap_folder,
        poll_seconds=settings.bounce_poll_seconds,
    )
    return BounceMailbox(config, bounces, deliveries)


def delivery_lease(settings: NotificationSettings) -> timedelta:
    """Longer than one send can take (every SMTP try timing out), so leases rarely lapse early."""
    return timedelta(seconds=settings.smtp_timeout_seconds * (settings.smtp_attempts + 1))


def bootstrap(
    settings: ServiceSettings | None = None, *, clock: Clock = utc_now
) -> tuple[Runtime, AsgiFastStream]:
    """The service; ``clock`` decides when weekly digests are due (tests set it)."""
    config = NotificationSettings.from_service_settings(settings)
    runtime = build_runtime(SERVICE, config, PUBLISHES)
    db = runtime.db
    relay = runtime.with_outbox(
        [
            db[DeliveryRepository.collection_name],
            db[Bounces.collection_name],
            db[Rejections.collection_name],
        ]
    )
    firms, recipients, accounts = FirmRepository(db), RecipientRepository(db), AccountNames(db)
    questions, inbox_items = QuestionRepository(db), InboxRepository(db)
    mailer = Mailer(smtp_config(config))
    runtime.health.depend_on("smtp", smtp_answers(smtp_config(config)))
    deliverer = Deliverer(
        DeliveryRepository(db, relay, runtime.clock),
        mailer,
        sender=config.mail_from,
        lease=delivery_lease(config),
    )
    renderer = Renderer()
    links = UnsubscribeLinks(
        config.notification_link_key.get_secret_value().encode(), config.notification_public_url
    )
    banners = ActivationBannerLinks(
        config.notification_link_key.get_secret_value().encode(), config.portal_base_url
    )
    service = NotificationService(
        firms, recipients, deliverer, renderer, links, accounts=accounts, banners=banners,
        rejections=Rejections(db, relay),
    )  # fmt: skip
    digests = Digests(
        firms, recipients, questions, deliverer, renderer, links,
        accounts=accounts, banners=banners, clock=clock,
    )  # fmt: skip
    scheduler = DigestScheduler(digests, config.digest_check_seconds)
    inbox = Inbox(inbox_items)
    register_handlers(runtime.events, service)
    register_invitation_commands(runtime.commands, service)
    account_emails = AccountEmails(firms, deliverer, AccountMailRenderer())
    register_account_email_commands(runtime.commands, account_emails)
    register_digest_handlers(runtime.events, digests)
    register_inbox_handlers(runtime.events, inbox)
    bounces = Bounces(db, db[DeliveryRepository.collection_name], relay)
    register_commands(runtime.commands, inbox, bounces)
    bounce_mailbox = bounce_mailbox_of(config, bounces, db[DeliveryRepository.collection_name])
    if bounce_mailbox is not None:
        runtime.startup.append(bounce_mailbox.start)
        runtime.health.depend_on("bounce_mailbox", bounce_mailbox.check)
        runtime.shutdown.insert(0, bounce_mailbox.stop)
    runtime.startup += [
        firms.ensure_indexes,
        accounts.ensure_indexes,
        recipients.ensure_indexes,
        questions.ensure_indexes,
        inbox_items.ensure_indexes,
        scheduler.start,
    ]
    runtime.shutdown += [scheduler.stop, deliverer.drain, mailer.close]
    runtime.commands.sends(UnsubscribeCategory, SettingChanged)  # from the unsubscribe page
    to_crm = partial(
        send_command,
        runtime.broker,
        reply_type=SettingChanged,
        timeout=config.request_timeout_seconds,
    )
    # After the handlers: refuse commands naming unknown staff (shared/messaging/staff.py).
    runtime.know_staff()
    app = build_app(
        runtime,
        description="Emails clients their invitations, system notifications (with an "
        "activation banner until they activate) and weekly transactions digests; "
        "keeps the staff's Inbox+.",
        routes=[("/unsubscribe", unsubscribe_page(links, to_crm))],
    )
    return runtime, app


runtime, app = bootstrap()
