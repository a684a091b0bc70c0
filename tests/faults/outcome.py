"""What both fault suites check after their bulk update: the same end state, whatever broke."""

from __future__ import annotations

from collections import Counter, defaultdict

from pymongo import AsyncMongoClient

from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.contracts import identity as identity_cmd
from shared.mailcatcher import MailCatcher
from shared.storage.mongo import Document
from tests.infra import Infra


async def assert_every_address_changed_once_with_one_invitation(
    client: Client, infra: Infra, firm_id: str, job_id: str, accounts: dict[str, str]
) -> None:
    """The job's report, crm's stored settings and identity's pending list all say: every
    address got Login on once, and one live invitation."""
    progress = await client.call(
        cmd.GetBulkUpdate(firm_id=firm_id, job_id=job_id), cmd.BulkUpdateProgress
    )
    assert (progress.accounts_done, progress.addresses_changed) == (len(accounts), len(accounts))
    assert (progress.invitations_sent, progress.error_count) == (len(accounts), 0)

    mongo: AsyncMongoClient[Document] = AsyncMongoClient(infra.mongodb_url)
    try:
        crm = mongo[f"{infra.database_prefix}crm"]["accounts"]
        settings = [
            s["login"]
            async for doc in crm.find({"firm_id": firm_id}, {"links": 1})
            for per_address in doc["links"].values()
            for s in per_address.values()
        ]
    finally:
        await mongo.close()
    assert len(settings) == len(accounts)
    assert all(settings)

    invited: Counter[str] = Counter()
    for offset in range(0, len(accounts), 500):
        page = await client.call(
            identity_cmd.ListPendingActivations(
                firm_id=firm_id, filter=identity_cmd.PendingFilter.INVITED, limit=500, offset=offset
            ),
            identity_cmd.PendingActivations,
        )
        for item in page.items:
            invited[item.email.lower()] += sum(1 for a in item.accounts if a.sent_at)
    assert invited == Counter({email.lower(): 1 for email in accounts})


def email_arrivals(infra: Infra, accounts: dict[str, str]) -> dict[str, list[float]]:
    """Per address, when each SMTP delivery arrived (sorted), after checking every address
    got exactly one email told apart by Message-ID: a resend carries the original one, and
    mail clients and providers show one message per Message-ID."""
    message_ids: dict[str, set[str]] = defaultdict(set)
    arrivals: dict[str, list[float]] = defaultdict(list)
    for caught in MailCatcher(infra.catcher_dir).all():
        for to in caught.envelope_to:
            message_ids[to].add(caught.header("Message-ID"))
            arrivals[to].append(caught.path.stat().st_mtime)
    assert set(message_ids) == {email.lower() for email in accounts}
    assert all(len(ids) == 1 for ids in message_ids.values())
    return {to: sorted(times) for to, times in arrivals.items()}
