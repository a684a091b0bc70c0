"""Assembles the crm service. Run with ``faststream run services.crm.main:app``."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from services.crm.addresses import AddressService
from services.crm.common import Store
from services.crm.entrypoints import register_commands, register_events, register_queries
from services.crm.facts import IdentityFacts
from services.crm.imports import ImportService
from services.crm.listing import AccountListing
from services.crm.queries import Queries
from services.crm.repository import AccountRepository, ContactRepository, FirmRepository
from services.crm.service import CrmService
from shared.contracts import events
from shared.runtime import Runtime, build_app, build_runtime
from shared.settings import ServiceSettings

PUBLISHES = (
    events.FirmRegistered,
    events.AccountCreated,
    events.ContactLinked,
    events.ContactUnlinked,
    events.AddressAdded,
    events.LoginToggled,
    events.NotifyToggled,
    events.NotificationPreferencesChanged,
    events.EmailSyncToggled,
    events.SignatoryToggled,
    events.ContactEmailChanged,
    events.BulkUpdateRequested,
)


def bootstrap(settings: ServiceSettings | None = None) -> tuple[Runtime, AsgiFastStream]:
    runtime = build_runtime("crm", settings or ServiceSettings(), PUBLISHES)
    firms_coll, contacts_coll, accounts_coll = (
        runtime.db[name] for name in ("firms", "contacts", "accounts")
    )
    relay = runtime.with_outbox([firms_coll, contacts_coll, accounts_coll])
    contacts = ContactRepository(runtime.db, relay, runtime.locks)
    accounts = AccountRepository(runtime.db, relay, runtime.locks)
    listing = AccountListing(runtime.db, runtime.locks)
    store = Store(FirmRepository(runtime.db, relay, runtime.locks), contacts, accounts, listing)
    register_commands(
        runtime.commands, CrmService(store), AddressService(store), ImportService(store)
    )
    register_queries(runtime.commands, Queries(store))
    register_events(runtime.events, IdentityFacts(listing))
    runtime.startup += [contacts.ensure_indexes, accounts.ensure_indexes, listing.ensure_indexes]
    app = build_app(
        runtime,
        description="Firms, client accounts, contacts, their addresses and the settings of each.",
    )
    return runtime, app


runtime, app = bootstrap()
