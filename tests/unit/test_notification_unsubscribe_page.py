"""The unsubscribe page over ASGI: GET only asks, POST sends crm the command, bad tokens nothing.

The command sender is a recording function here; the end-to-end test
(tests/e2e/test_notification_unsubscribe.py) goes through the real crm.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import structlog

from services.notification.links import UnsubscribeLinks, UnsubscribeTarget
from services.notification.unsubscribe import unsubscribe_page
from shared.contracts.crm import SettingChanged, UnsubscribeCategory
from shared.contracts.errors import ErrorCode, ErrorReply

PUBLIC = "https://notify.test"
KEY = b"unit-tests-link-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def captured_logs() -> Iterator[None]:
    """Keep the page's logs off a stream an earlier test may have closed."""
    with structlog.testing.capture_logs():
        yield


class RecordingCrm:
    """Records the commands the page sends and answers with ``reply``."""

    def __init__(self, reply: SettingChanged | ErrorReply | None = None) -> None:
        self.sent: list[UnsubscribeCategory] = []
        self.reply = reply or SettingChanged(changed=True)

    async def __call__(self, command: UnsubscribeCategory) -> SettingChanged | ErrorReply:
        self.sent.append(command)
        return self.reply


TARGET = UnsubscribeTarget("firm-1", "acc_1", "con_1", "adr_1", "documents.uploads")


def page_client(crm: RecordingCrm) -> tuple[httpx.AsyncClient, str]:
    links = UnsubscribeLinks(KEY, PUBLIC)
    app = unsubscribe_page(links, crm)
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url=PUBLIC), links.url(TARGET)


class TestUnsubscribePage:
    async def test_opening_the_link_only_asks_for_confirmation(self) -> None:
        crm = RecordingCrm()
        http, url = page_client(crm)
        async with http:
            page = await http.get(url)
        assert page.status_code == 200
        assert 'id="confirm"' in page.text
        assert "<form" in page.text
        assert crm.sent == []

    async def test_a_one_click_post_unsubscribes_that_category_for_that_address_only(self) -> None:
        crm = RecordingCrm()
        http, url = page_client(crm)
        async with http:
            done = await http.post(url, content=b"List-Unsubscribe=One-Click")
        assert done.status_code == 200
        assert 'id="unsubscribed"' in done.text
        [command] = crm.sent
        assert (command.firm_id, command.account_id, command.contact_id) == (
            "firm-1",
            "acc_1",
            "con_1",
        )
        assert (command.address_id, command.category.value) == ("adr_1", "documents.uploads")

    @pytest.mark.parametrize("token", ["", "u1.Zm9v.bad", "garbage"])
    async def test_a_forged_or_garbled_token_changes_nothing(self, token: str) -> None:
        crm = RecordingCrm()
        http, _ = page_client(crm)
        async with http:
            opened = await http.get("/unsubscribe", params={"token": token})
            posted = await http.post("/unsubscribe", params={"token": token})
        assert opened.status_code == posted.status_code == 400
        assert crm.sent == []

    async def test_crm_not_answering_changes_nothing_and_asks_to_retry(self) -> None:
        async def away(command: UnsubscribeCategory) -> SettingChanged | ErrorReply:
            raise TimeoutError("no reply")

        links = UnsubscribeLinks(KEY, PUBLIC)
        transport = httpx.ASGITransport(app=unsubscribe_page(links, away))
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as http:
            page = await http.post(links.url(TARGET), content=b"List-Unsubscribe=One-Click")
        assert page.status_code == 503

    async def test_an_address_crm_no_longer_knows_gets_a_clear_page(self) -> None:
        refused = ErrorReply(code=ErrorCode.NOT_FOUND, message="no such address on the account")
        http, url = page_client(RecordingCrm(refused))
        async with http:
            page = await http.post(url, content=b"List-Unsubscribe=One-Click")
        assert page.status_code == 404
        assert 'id="refused"' in page.text
