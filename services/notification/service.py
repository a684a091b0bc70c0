"""The notification use cases: keep the projection, send invitations and notifications.

Each use case takes the event's envelope (the wire contract), turns it into domain
facts at this edge, and applies them; sending goes through :class:`Deliverer`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

from services.notification.delivery import Cause, Deliverer
from services.notification.digest import zone_of
from services.notification.domain import (
    Activation,
    ActivationSet,
    AddressSeen,
    BannerLinks,
    Delivery,
    EmailSeen,
    Fact,
    Firm,
    LoginSet,
    NotifySet,
    Recipient,
    RecipientKey,
    TimeZoneSet,
    address_linked,
    address_unlinked,
    banner_url,
    firm_copy_key,
    invitation_delivery_key,
    invitation_is_current,
    notification_delivery_key,
    notification_key,
    recipients_of,
    time_version,
)
from services.notification.kinds import Kind, NotificationRefused, kind_for, template_values
from services.notification.links import UnsubscribeLinks, UnsubscribeTarget
from services.notification.rejections import Rejections
from services.notification.rendering import RenderedMail, Renderer, from_firm
from services.notification.repository import AccountNames, FirmRepository, RecipientRepository
from shared.contracts.envelope import Envelope
from shared.contracts.errors import DomainError, ErrorCode
from shared.contracts.events import (
    AccountCreated,
    AddressAdded,
    AddressSettings,
    ContactEmailChanged,
    ContactLinked,
    ContactUnlinked,
    FirmRegistered,
    FirmSettingsChanged,
    InvitationIssued,
    LoginToggled,
    NotificationPreferencesChanged,
    NotificationRequested,
    NotifyToggled,
    RejectionReason,
    UserActivated,
)
from shared.contracts.notification import DeliverInvitation
from shared.logging import get_logger

log = get_logger(__name__)

INVITATION_KIND = "invitation"


class InvalidNotification(DomainError):
    """A NotificationRequested that can never be sent as it is: dead-lettered, nothing sent."""

    code = ErrorCode.VALIDATION_FAILED

    @classmethod
    def from_refusal(cls, refused: NotificationRefused) -> InvalidNotification:
        return cls(f"{refused.field}: {refused.reason}", field=refused.field)


def unsubscribe_target(recipient: Recipient, category: str) -> UnsubscribeTarget:
    key = recipient.key
    return UnsubscribeTarget(
        key.firm_id, key.account_id, recipient.contact_id, key.address_id, category
    )


class NotificationService:
    def __init__(
        self,
        firms: FirmRepository,
        recipients: RecipientRepository,
        deliverer: Deliverer,
        renderer: Renderer,
        links: UnsubscribeLinks,
        *,
        accounts: AccountNames,
        banners: BannerLinks,
        rejections: Rejections,
    ) -> None:
        self.firms = firms
        self.accounts = accounts
        self.recipients = recipients
        self.deliverer = deliverer
        self.renderer = renderer
        self.links = links
        self.banners = banners
        self.rejections = rejections

    # --- projection ----------------------------------------------------------------------

    async def firm_settings(
        self, envelope: Envelope[FirmRegistered] | Envelope[FirmSettingsChanged]
    ) -> None:
        """Keep the newest snapshot of the firm's settings, from either event (the two share
        the firm's versions), so a change applies to the next email."""
        p = envelope.payload
        firm = Firm(envelope.firm_id, p.name, p.time_zone, p.copy_emails_to, p.reply_to)
        await self.firms.record(firm, envelope.aggregate_version)

    async def account_created(self, envelope: Envelope[AccountCreated]) -> None:
        p = envelope.payload
        await self.accounts.record(
            envelope.firm_id, p.account_id, p.name, envelope.aggregate_version
        )

    async def contact_linked(self, envelope: Envelope[ContactLinked]) -> None:
        p = envelope.payload
        zone = TimeZoneSet(envelope.aggregate_version, p.time_zone)
        facts = [
            (address.address_id, fact)
            for address in p.addresses
            for fact in (*_linked_facts(envelope, p.contact_id, address), zone)
        ]
        await self.recipients.record_account(envelope.firm_id, p.account_id, facts)

    async def address_added(self, envelope: Envelope[AddressAdded]) -> None:
        p = envelope.payload
        key = RecipientKey(envelope.firm_id, p.account_id, p.address.address_id)
        await self._record(key, _linked_facts(envelope, p.contact_id, p.address))

    async def contact_unlinked(self, envelope: Envelope[ContactUnlinked]) -> None:
        p = envelope.payload
        unlinked = address_unlinked(envelope.aggregate_version, contact_id=p.contact_id)
        facts = [(address.address_id, fact) for address in p.addresses for fact in unlinked]
        await self.recipients.record_account(envelope.firm_id, p.account_id, facts)

    async def contact_email_changed(self, envelope: Envelope[ContactEmailChanged]) -> None:
        p = envelope.payload
        fact = EmailSeen(time_version(envelope.occurred_at), p.new_email)
        keys = (RecipientKey(envelope.firm_id, a, p.address_id) for a in p.account_ids)
        await asyncio.gather(*(self.recipients.record(key, fact) for key in keys))

    async def login_toggled(self, envelope: Envelope[LoginToggled]) -> None:
        p = envelope.payload
        key = RecipientKey(envelope.firm_id, p.account_id, p.address_id)
        version = envelope.aggregate_version
        await self._record(
            key, (*_seen(envelope, p.contact_id, p.email), LoginSet(version, p.enabled))
        )

    async def notify_toggled(self, envelope: Envelope[NotifyToggled]) -> None:
        p = envelope.payload
        key = RecipientKey(envelope.firm_id, p.account_id, p.address_id)
        categories = frozenset(c.value for c in p.categories) if p.enabled else frozenset()
        notify = NotifySet(envelope.aggregate_version, p.enabled, categories)
        await self._record(key, (*_seen(envelope, p.contact_id, p.email), notify))

    async def preferences_changed(self, envelope: Envelope[NotificationPreferencesChanged]) -> None:
        p = envelope.payload
        key = RecipientKey(envelope.firm_id, p.account_id, p.address_id)
        notify = NotifySet(
            envelope.aggregate_version, True, frozenset(c.value for c in p.categories)
        )
        await self._record(key, (*_seen(envelope, p.contact_id, p.email), notify))

    async def _record(self, key: RecipientKey, facts: Sequence[Fact]) -> None:
        await self.recipients.record(key, *facts)

    async def user_activated(self, envelope: Envelope[UserActivated]) -> None:
        p = envelope.payload
        key = RecipientKey(envelope.firm_id, p.account_id, p.address_id)
        fact = ActivationSet(envelope.aggregate_version, Activation.ACTIVATED)
        await self.recipients.record(key, fact)

    # --- invitations ---------------------------------------------------------------------

    async def invitation_issued(self, envelope: Envelope[InvitationIssued]) -> None:
        """The fact: the address awaits activation (its email comes with DeliverInvitation)."""
        p = envelope.payload
        key = RecipientKey(envelope.firm_id, p.account_id, p.address_id)
        await self.recipients.record(
            key, ActivationSet(envelope.aggregate_version, Activation.PENDING)
        )

    async def deliver_invitation(self, command: DeliverInvitation) -> None:
        """Send the invitation (its link is used here only: never stored, never logged).

        The command carries the InvitationIssued fact, which is applied here too: whichever
        of the two arrives first, the projection ends the same.
        """
        envelope, link = command.invitation, command.activation_url.get_secret_value()
        p = envelope.payload
        key = RecipientKey(envelope.firm_id, p.account_id, p.address_id)
        version = envelope.aggregate_version
        recipient = await self.recipients.record(key, ActivationSet(version, Activation.PENDING))
        if not invitation_is_current(recipient, version):
            log.info("invitation superseded; not sent", invitation_id=p.invitation_id)
            return
        firm = await self.firms.get(envelope.firm_id)
        if firm is None:
            log.warning("firm not known yet; inviting without its name or copy")
        delivery = Delivery(
            invitation_delivery_key(p.invitation_id),
            envelope.firm_id,
            p.account_id,
            p.email,
            INVITATION_KIND,
        )
        about = _Invitation(
            p,
            firm,
            await self.accounts.get(envelope.firm_id, p.account_id),
            # The reader's zone: the contact's own, else the firm's.
            zone_of(recipient.time_zone, firm.time_zone if firm else None).key,
        )
        await self.deliverer.deliver(delivery, self._invitation(about, link), _cause(envelope))
        if firm is not None and firm.copy_emails_to:
            copy = _firm_copy(
                delivery.key, envelope.firm_id, p.account_id, firm.copy_emails_to, INVITATION_KIND
            )
            mail = self._invitation(about, None, copy_for=p.email)
            await self.deliverer.deliver(copy, mail, _cause(envelope))

    def _invitation(
        self, about: _Invitation, link: str | None, *, copy_for: str | None = None
    ) -> RenderedMail:
        p, firm = about.invitation, about.firm
        mail = self.renderer.invitation(
            firm_name=firm.name if firm else None,
            time_zone=about.time_zone,
            personal_message=p.personal_message,
            # The firm's copy must not carry the secret link: staff could activate with it.
            activation_url=None if copy_for else link,
            expires_at=p.expires_at,
            account_name=about.account_name,
            copy_for=copy_for,
        )
        return from_firm(mail, firm)

    # --- notifications -------------------------------------------------------------------

    async def notification_requested(self, envelope: Envelope[NotificationRequested]) -> None:
        """Fan out to the account's addresses that want this category, plus the firm's copy.

        A request that reaches nobody is answered with NotificationRejected (correlated to
        it): an unknown kind, a kind of another category or bad template data (refused
        before anything is sent, and dead-lettered with the reason as well), an account
        this firm has no address of, or no address with Notify on for the category.
        """
        p = envelope.payload
        try:
            kind = kind_for(p.kind, p.category.value)
            values = template_values(kind, p.template_data)
        except NotificationRefused as refused:
            reason = (
                RejectionReason.BAD_TEMPLATE_DATA
                if refused.field.startswith("template_data")
                else RejectionReason.UNKNOWN_KIND
            )
            await self.rejections.reject(envelope, reason, refused.reason, refused.field)
            raise InvalidNotification.from_refusal(refused) from None
        known = await self.recipients.of_account(envelope.firm_id, p.account_id)
        chosen = recipients_of(known, p.category.value)
        if not chosen:
            await self._reject_unaddressed(envelope, bool(known))
            return
        firm = await self.firms.get(envelope.firm_id)
        if firm is None:
            log.warning("firm not known yet; sending without its name or copy")
        log.info(
            "notification fan-out", kind=p.kind, category=p.category.value, recipients=len(chosen)
        )
        account_name = await self.accounts.get(envelope.firm_id, p.account_id)
        request = _Request(envelope, kind, values, account_name)
        sends = [self._notify(request, firm, recipient) for recipient in chosen]
        if chosen and firm is not None and firm.copy_emails_to:
            sends.append(self._copy_to_firm(request, firm, firm.copy_emails_to, chosen))
        await _all_then_raise(sends)

    async def _reject_unaddressed(
        self, envelope: Envelope[NotificationRequested], account_known: bool
    ) -> None:
        p = envelope.payload
        if account_known:
            await self.rejections.reject(
                envelope,
                RejectionReason.NO_RECIPIENT,
                f"no address of account {p.account_id} has Notify on for {p.category.value}",
                "category",
            )
        else:
            await self.rejections.reject(
                envelope,
                RejectionReason.UNKNOWN_ACCOUNT,
                f"firm {envelope.firm_id} has no address of account {p.account_id}",
                "account_id",
            )

    def _render(
        self,
        request: _Request,
        firm: Firm | None,
        *,
        recipient: Recipient | None = None,
        copy_for: Sequence[str] = (),
    ) -> RenderedMail:
        """The client's email (banner, unsubscribe link) or, without a recipient, the copy."""
        category = request.kind.category
        mail = self.renderer.notification(
            firm_name=firm.name if firm else None,
            category=category,
            kind=request.kind.name,
            template_data=request.values,
            banner_url=banner_url(recipient, self.banners) if recipient else None,
            account_name=request.account_name,
            copy_for=copy_for,
            subject=request.kind.subject_for(request.values),
            unsubscribe_url=(
                self.links.url(unsubscribe_target(recipient, category)) if recipient else None
            ),
        )
        return from_firm(mail, firm)

    async def _notify(self, request: _Request, firm: Firm | None, recipient: Recipient) -> None:
        envelope = request.envelope
        mail = self._render(request, firm, recipient=recipient)
        key = notification_delivery_key(str(envelope.event_id), recipient.key.address_id)
        delivery = Delivery(
            key, envelope.firm_id, envelope.payload.account_id, recipient.email, request.kind.name
        )
        await self.deliverer.deliver(delivery, mail, _cause(envelope))

    async def _copy_to_firm(
        self, request: _Request, firm: Firm, copy_to: str, recipients: list[Recipient]
    ) -> None:
        """One separate message per notification, without banner (not a Bcc per recipient)."""
        envelope = request.envelope
        mail = self._render(request, firm, copy_for=[r.email for r in recipients])
        delivery = _firm_copy(
            notification_key(str(envelope.event_id)),
            envelope.firm_id,
            envelope.payload.account_id,
            copy_to,
            request.kind.name,
        )
        await self.deliverer.deliver(delivery, mail, _cause(envelope))


@dataclass(frozen=True)
class _Request:
    """A NotificationRequested whose kind and template data were checked."""

    envelope: Envelope[NotificationRequested]
    kind: Kind
    values: dict[str, str | None]
    account_name: str | None


@dataclass(frozen=True)
class _Invitation:
    """An invitation to send, with what its email says around it."""

    invitation: InvitationIssued
    firm: Firm | None
    account_name: str | None
    time_zone: str


def _cause(envelope: Envelope[InvitationIssued] | Envelope[NotificationRequested]) -> Cause:
    return Cause(envelope.firm_id, envelope.correlation_id, str(envelope.event_id))


def _firm_copy(cause_key: str, firm_id: str, account_id: str, copy_to: str, kind: str) -> Delivery:
    return Delivery(firm_copy_key(cause_key), firm_id, account_id, copy_to, f"{kind}.firm_copy")


async def _all_then_raise(sends: Sequence[Awaitable[None]]) -> None:
    """Run every send to the end; then re-raise the first failure so the event is retried.

    Sends that succeeded are recorded, so the retry only sends what is left.
    """
    results = await asyncio.gather(*sends, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _seen(
    envelope: Envelope[LoginToggled]
    | Envelope[NotifyToggled]
    | Envelope[NotificationPreferencesChanged],
    contact_id: str,
    email: str,
) -> tuple[Fact, Fact]:
    """Every account event about an address says it is linked, and with which email."""
    return (
        AddressSeen(envelope.aggregate_version, contact_id),
        EmailSeen(time_version(envelope.occurred_at), email),
    )


def _linked_facts(
    envelope: Envelope[ContactLinked] | Envelope[AddressAdded],
    contact_id: str,
    address: AddressSettings,
) -> Sequence[Fact]:
    """What a newly linked address tells: its contact, email, Login and Notify."""
    return address_linked(
        envelope.aggregate_version,
        occurred_at=envelope.occurred_at,
        contact_id=contact_id,
        email=address.email,
        login=address.login,
        notify=address.notify,
        categories=frozenset(c.value for c in address.notify_categories),
    )
