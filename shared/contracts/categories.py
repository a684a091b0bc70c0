"""Notification categories (SPEC "Notifications"); all are on by default when Notify is on."""

from __future__ import annotations

from enum import StrEnum


class NotificationCategory(StrEnum):
    DOCUMENT_UPLOADS = "documents.uploads"
    DOCUMENT_SIGNATURES = "documents.signatures"
    DOCUMENT_APPROVALS = "documents.approvals"
    MESSAGES_AND_TASKS = "messages_and_tasks"
    PROPOSALS = "proposals"
    ORGANIZERS = "organizers"
    INVOICES_AND_PAYMENTS = "invoices_and_payments"
    CLIENT_REQUESTS = "client_requests"
    TRANSACTIONS = "transactions"


ALL_CATEGORIES: frozenset[NotificationCategory] = frozenset(NotificationCategory)
