"""Assembles the crm service. Run with ``faststream run services.crm.main:app``."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream
from pydantic import Field

from services.crm import bulk
from services.crm.addresses import AddressService
from services.crm.audit import AuditTrail
from services.crm.bulk import Tuning
from services.crm.bulk_metrics import bulk_progress
from services.crm.common import Store
from services.crm.entrypoints import (
    register_bulk_events,
    register_bulk_updates,
    register_commands,
    register_events,
    register_queries,
)
from services.crm.facts import IdentityFacts
from services.crm.imports import ImportService
from services.crm.listing import AccountListing
from services.crm.queries import Queries
from services.crm.repository import AccountRepository, ContactRepository, FirmRepository
from services.crm.service import CrmService
from services.crm.staff import STAFF, StaffMembers, StaffRepository
from services.crm.staff_entrypoints import register_audit_events, register_staff_commands
from shared.contracts import events
from shared.runtime import Runtime, build_app, build_runtime
from shared.settings import ServiceSettings

PUBLISHES = (
    events.FirmRegistered,
    events.FirmSettingsChanged,
    events.StaffMemberRegistered,
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
    events.BulkUpdateCompleted,
)


class CrmSettings(ServiceSettings):
    bulk_chunk_size: int = Field(default=50, ge=1, le=1000, description="Accounts per chunk.")
    bulk_concurrency: int = Field(
        default=8, ge=1, le=256, description="Chunks one process works on at once."
    )
    bulk_sweep_seconds: float = Field(
        default=1.0, gt=0, description="How often a process looks for bulk work to resume."
    )

    def bulk_tuning(self) -> Tuning:
        return Tuning(
            chunk_size=self.bulk_chunk_size,
            concurrency=self.bulk_concurrency,
            sweep_seconds=self.bulk_sweep_seconds,
        )


def bootstrap(settings: ServiceSettings | None = None) -> tuple[Runtime, AsgiFastStream]:
    crm_settings = CrmSettings.from_service_settings(settings)
    runtime = build_runtime("crm", crm_settings, PUBLISHES)
    relay = runtime.with_outbox(
        [runtime.db[name] for name in ("firms", "contacts", "accounts", bulk.JOBS, STAFF)]
    )
    contacts = ContactRepository(runtime.db, relay)
    accounts = AccountRepository(runtime.db, relay)
    listing = AccountListing(runtime.db)
    store = Store(FirmRepository(runtime.db, relay), contacts, accounts, listing)
    register_commands(
        runtime.commands, CrmService(store), AddressService(store), ImportService(store)
    )
    register_queries(runtime.commands, Queries(store))
    updates = bulk.BulkUpdates(store, runtime.db, relay, runtime.clock, crm_settings.bulk_tuning())
    register_bulk_updates(runtime.commands, updates)
    staff = StaffRepository(runtime.db, relay)
    runtime.check_staff(staff)
    audit = AuditTrail(runtime.db, store)
    register_staff_commands(runtime.commands, StaffMembers(store, staff, runtime.clock), audit)
    runtime.metrics.gauges.add("bulk_updates", bulk_progress(updates.jobs, updates.chunks))
    register_bulk_events(runtime.events, updates)
    register_events(runtime.events, IdentityFacts(listing), audit)
    register_audit_events(runtime.events, audit)
    runtime.startup += [
        contacts.ensure_indexes,
        accounts.ensure_indexes,
        listing.ensure_indexes,
        updates.ensure_indexes,
        staff.ensure_indexes,
        audit.ensure_indexes,
        updates.start,
    ]
    runtime.shutdown.append(updates.stop)
    app = build_app(
        runtime,
        description="Firms, client accounts, contacts, their addresses and the settings of each.",
    )
    return runtime, app


runtime, app = bootstrap()
