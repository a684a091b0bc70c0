"""Assembles the notification service.

Run with ``faststream run services.notification.main:app --host 127.0.0.1 --port 8003``.
"""

from __future__ import annotations

from datetime import timedelta

from faststream.asgi import AsgiFastStream

from services.notification.delivery import Deliverer
from services.notification.entrypoints import register_handlers
from services.notification.mailer import Mailer, SmtpConfig
from services.notification.rendering import Renderer
from services.notification.repository import (
    DeliveryRepository,
    FirmRepository,
    RecipientRepository,
)
from services.notification.service import NotificationService
from services.notification.settings import NotificationSettings
from shared.contracts import events
from shared.runtime import Runtime, build_app, build_runtime
from shared.settings import ServiceSettings

SERVICE = "notification"
PUBLISHES = (events.NotificationDelivered, events.NotificationFailed)


def smtp_config(settings: NotificationSettings) -> SmtpConfig:
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        timeout_seconds=settings.smtp_timeout_seconds,
        connections=settings.smtp_connections,
        attempts=settings.smtp_attempts,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        start_tls=settings.smtp_start_tls,
    )


def delivery_lease(settings: NotificationSettings) -> timedelta:
    """Longer than one send can take (every SMTP try timing out), so leases rarely lapse early."""
    return timedelta(seconds=settings.smtp_timeout_seconds * (settings.smtp_attempts + 1))


def bootstrap(settings: ServiceSettings | None = None) -> tuple[Runtime, AsgiFastStream]:
    config = NotificationSettings.from_service_settings(settings)
    runtime = build_runtime(SERVICE, config, PUBLISHES)
    relay = runtime.with_outbox([runtime.db[DeliveryRepository.collection_name]])
    recipients = RecipientRepository(runtime.db)
    mailer = Mailer(smtp_config(config))
    deliverer = Deliverer(
        DeliveryRepository(runtime.db, relay),
        mailer,
        sender=config.mail_from,
        lease=delivery_lease(config),
    )
    firms = FirmRepository(runtime.db)
    service = NotificationService(
        firms,
        recipients,
        deliverer,
        Renderer(),
        portal_base_url=config.portal_base_url,
    )
    register_handlers(runtime.events, service)
    runtime.startup += [firms.ensure_indexes, recipients.ensure_indexes]
    runtime.shutdown.append(mailer.close)
    app = build_app(
        runtime,
        description="Emails clients their invitations and system notifications, "
        "with an activation banner until they activate.",
    )
    return runtime, app


runtime, app = bootstrap()
