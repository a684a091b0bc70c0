"""The committed AsyncAPI documents are what FastStream generates from the code today."""

from __future__ import annotations

import pytest

from shared.contracts.asyncapi import DOCS, SERVICES, document


@pytest.mark.parametrize("service", SERVICES)
def test_the_committed_asyncapi_document_is_up_to_date(service: str) -> None:
    committed = DOCS / f"{service}.yaml"
    assert committed.exists(), "run `make docs` and commit docs/asyncapi"
    assert document(service) == committed.read_text(), (
        f"{service}'s contracts changed: run `make docs` and commit docs/asyncapi/{service}.yaml"
    )


def test_every_service_documents_what_it_publishes_and_consumes() -> None:
    crm, identity = document("crm"), document("identity")
    assert "crm.account.login_toggled" in crm
    assert "crm.commands" in crm
    assert "identity.invitation.issued" in identity
    assert "identity.events" in identity
