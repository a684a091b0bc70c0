"""Bulk updates in ``/metrics``: how many run, and how far each one is (read at scrape time).

Bounded reads: open jobs are found by the ``(open, created_at)`` index, at most
``JOBS_LISTED`` of them are listed (the oldest, those an operator waits for), and each
one's finished chunks are counted on the ``(firm_id, job_id, n)`` index.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.core import GaugeMetricFamily, Metric
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from shared.metrics import COUNT_LIMIT, PREFIX, Read
from shared.storage.mongo import Document

JOBS_LISTED = 20
OPEN: Document = {"open": True}


def bulk_progress(jobs: AsyncCollection[Document], chunks: AsyncCollection[Document]) -> Read:
    async def read() -> Sequence[Metric]:
        running = GaugeMetricFamily(
            f"{PREFIX}_bulk_jobs_in_progress", "Bulk updates accepted and not completed yet."
        )
        running.add_metric([], await jobs.count_documents(OPEN, limit=COUNT_LIMIT))
        labels = ["firm_id", "job_id"]
        progress = GaugeMetricFamily(
            f"{PREFIX}_bulk_job_progress_ratio",
            f"Share of a running bulk update's chunks done (the {JOBS_LISTED} oldest jobs).",
            labels=labels,
        )
        accounts = GaugeMetricFamily(
            f"{PREFIX}_bulk_job_accounts", "Accounts a running bulk update changes.", labels=labels
        )
        projection = {"firm_id": 1, "chunk_count": 1, "accounts_total": 1}
        cursor = jobs.find(OPEN, projection).sort("created_at", ASCENDING).limit(JOBS_LISTED)
        async for job in cursor:
            job_labels = [str(job["firm_id"]), str(job["_id"])]
            done = await chunks.count_documents(
                {"firm_id": job["firm_id"], "job_id": job["_id"], "done": True}
            )
            progress.add_metric(job_labels, done / job["chunk_count"] if job["chunk_count"] else 1)
            accounts.add_metric(job_labels, job["accounts_total"])
        return [running, progress, accounts]

    return read
