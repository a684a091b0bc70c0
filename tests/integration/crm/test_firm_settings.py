"""A firm's settings: its look and portal address at registration, and changes later."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from shared.cli.client import Client, CommandRefused
from shared.contracts import crm as cmd
from shared.contracts.errors import ErrorCode
from tests.integration.crm.conftest import EventTap
from tests.services import RunningServices

pytestmark = pytest.mark.integration


def _firm_id() -> str:
    return f"firm-{uuid.uuid4().hex[:10]}"


async def _register(client: Client, **fields: object) -> cmd.FirmRegisteredReply:
    reply: cmd.FirmRegisteredReply = await client.call(
        cmd.RegisterFirm(firm_id=_firm_id(), **fields),  # type: ignore[arg-type]
        cmd.FirmRegisteredReply,
    )
    return reply


class TestRegistering:
    async def test_the_look_and_the_slug_are_published_with_the_firm(
        self, client: Client, services: RunningServices, crm_events: EventTap
    ) -> None:
        slug = f"berg-{uuid.uuid4().hex[:6]}"
        reply = await _register(
            client,
            name="Berg & Söner Redovisning",
            slug=slug,
            reply_to="office@berg.example",
            logo_url="https://berg.example/logo.png",
            accent_color="#1d4ed8",
        )

        assert reply.slug == slug
        [event] = await crm_events.wait_for(
            lambda b: b["type"] == "FirmRegistered" and b["firm_id"] == reply.firm_id
        )
        assert {
            k: event["payload"][k] for k in ("slug", "reply_to", "logo_url", "accent_color")
        } == {
            "slug": slug,
            "reply_to": "office@berg.example",
            "logo_url": "https://berg.example/logo.png",
            "accent_color": "#1d4ed8",
        }

    async def test_a_slug_is_made_from_the_name_and_two_firms_of_one_name_get_two(
        self, client: Client, services: RunningServices
    ) -> None:
        name = f"Åberg Partners {uuid.uuid4().hex[:6]}"
        first = await _register(client, name=name)
        second = await _register(client, name=name)

        assert first.slug == f"aberg-partners-{name[-6:]}"
        assert second.slug is not None and second.slug.startswith(f"{first.slug}-")

    async def test_a_slug_another_firm_holds_is_refused_by_name(
        self, client: Client, services: RunningServices
    ) -> None:
        slug = f"taken-{uuid.uuid4().hex[:6]}"
        await _register(client, name="First", slug=slug)

        with pytest.raises(CommandRefused) as refused:
            await _register(client, name="Second", slug=slug)
        reply = refused.value.reply
        assert (reply.code, [e.field for e in reply.errors]) == (ErrorCode.CONFLICT, ["slug"])

    def test_an_unknown_time_zone_is_refused_before_it_is_sent(self) -> None:
        with pytest.raises(ValidationError, match="unknown time zone"):
            cmd.RegisterFirm(firm_id="f", name="Mars Accounting", time_zone="Mars/Olympus")


class TestChangingSettings:
    async def test_the_new_settings_are_published_whole_and_the_unnamed_kept(
        self, client: Client, services: RunningServices, crm_events: EventTap
    ) -> None:
        firm = await _register(
            client, name="Lind", copy_emails_to="copies@lind.example", time_zone="Europe/Oslo"
        )

        reply = await client.call(
            cmd.ChangeFirmSettings(
                firm_id=firm.firm_id,
                name="Lind & Co",
                invitation_expiry_days=14,
                copy_emails_to="off",
                accent_color="#aa0000",
            ),
            cmd.FirmSettingsChangedReply,
        )

        assert reply.changed == ("accent_color", "copy_emails_to", "invitation_expiry_days", "name")
        [event] = await crm_events.wait_for(
            lambda b: b["type"] == "FirmSettingsChanged" and b["firm_id"] == firm.firm_id
        )
        payload = event["payload"]
        assert (payload["name"], payload["invitation_expiry_days"], payload["time_zone"]) == (
            "Lind & Co",
            14,
            "Europe/Oslo",
        )
        assert (payload["copy_emails_to"], payload["accent_color"], payload["slug"]) == (
            None,
            "#aa0000",
            firm.slug,
        )
        assert event["aggregate_version"] == 2

    async def test_a_change_to_the_same_values_publishes_nothing(
        self, client: Client, services: RunningServices, crm_events: EventTap
    ) -> None:
        firm = await _register(client, name="Same")

        reply = await client.call(
            cmd.ChangeFirmSettings(firm_id=firm.firm_id, name="Same"), cmd.FirmSettingsChangedReply
        )

        assert reply.changed == ()
        await crm_events.settle()
        assert crm_events.of("FirmSettingsChanged", name="Same") == []

    async def test_an_unknown_firm_is_refused(
        self, client: Client, services: RunningServices
    ) -> None:
        with pytest.raises(CommandRefused) as refused:
            await client.call(
                cmd.ChangeFirmSettings(firm_id=_firm_id(), name="Ghost"),
                cmd.FirmSettingsChangedReply,
            )
        assert refused.value.reply.code == ErrorCode.UNKNOWN_FIRM, refused.value.reply

    def test_a_change_must_name_a_setting_and_off_is_the_only_word_for_off(self) -> None:
        with pytest.raises(ValidationError, match="at least one setting"):
            cmd.ChangeFirmSettings(firm_id="f")
        with pytest.raises(ValidationError, match="is not a valid email"):
            cmd.ChangeFirmSettings(firm_id="f", reply_to="nobody")
