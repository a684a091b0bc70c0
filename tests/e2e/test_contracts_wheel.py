"""The contracts wheel installs into a fresh virtual environment and round-trips every message.

``contracts/build.py`` (what ``make dist`` runs) builds the wheel; a new Python 3.11
venv installs it (its dependencies from PyPI); a script running there in isolated mode,
so nothing of this repository is importable, publishes every event type through the
real broker with the wheel's ``Bus`` and reads it back with its models, and sends every
command the same way to a queue of its own.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.contracts.events import EVENT_TYPES
from shared.contracts.registry import COMMAND_TYPES
from shared.contracts.version import CONTRACT_VERSION
from tests.infra import ROOT, Infra

pytestmark = pytest.mark.e2e

ROUND_TRIP = """
import asyncio, sys, uuid
from importlib.metadata import version

from crm_backbone_contracts.bus import Bus, read_command
from crm_backbone_contracts.envelope import Envelope
from crm_backbone_contracts.events import EVENT_TYPES
from crm_backbone_contracts.registry import COMMAND_TYPES, json_schema
from crm_backbone_contracts.samples import sample
from crm_backbone_contracts.version import CONTRACT_VERSION


async def main(url: str) -> None:
    assert version("crm-backbone-contracts") == CONTRACT_VERSION
    tag = uuid.uuid4().hex[:8]
    async with Bus.connect(url) as bus:
        await bus.channel.declare_exchange("integration.events", "topic", durable=True)
        commands = await bus.channel.declare_queue(f"wheel.{tag}.commands", auto_delete=True)
        async with bus.subscribe(f"wheel.{tag}.events", [f"wheel.{tag}.#"], durable=False) as inbox:
            sent = {}
            for name, payload in EVENT_TYPES.items():
                document = sample(json_schema(name), seed=f"{tag}{name}")
                envelope = Envelope[payload].model_validate(document)
                await bus.publish(envelope, f"wheel.{tag}.{name}")
                sent[envelope.event_id] = envelope
            async with asyncio.timeout(30):
                async for received in inbox:
                    assert received == sent.pop(received.event_id), received.type
                    if not sent:
                        break
            await inbox.aclose()
        for name, command_type in COMMAND_TYPES.items():
            command = command_type.model_validate(sample(json_schema(name), seed=f"{tag}{name}"))
            await bus.send(command, correlation_id=tag, queue=commands.name)
            async with asyncio.timeout(10):
                while (message := await commands.get(no_ack=True, fail=False)) is None:
                    await asyncio.sleep(0.05)
            assert message.headers["command"] == name
            assert read_command(message.body, message.headers) == command, name
    print(f"round-tripped {len(EVENT_TYPES)} events and {len(COMMAND_TYPES)} commands")


asyncio.run(main(sys.argv[1]))
"""


def run(*args: str | Path, cwd: Path) -> str:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, cwd=cwd, timeout=600
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_the_wheel_installs_and_round_trips_every_message(tmp_path: Path, infra: Infra) -> None:
    python = shutil.which("python3.11") or sys.executable
    built = run(sys.executable, ROOT / "contracts" / "build.py", tmp_path / "dist", cwd=ROOT)
    wheel = Path(built.strip().splitlines()[-1])
    assert wheel.name == f"crm_backbone_contracts-{CONTRACT_VERSION}-py3-none-any.whl"

    run(python, "-m", "venv", tmp_path / "venv", cwd=tmp_path)
    venv_python = tmp_path / "venv" / "bin" / "python"
    run(venv_python, "-m", "pip", "install", "--quiet", wheel, cwd=tmp_path)
    script = tmp_path / "round_trip.py"
    script.write_text(ROUND_TRIP)

    # -I: isolated, so only the installed wheel is importable (not this repository).
    out = run(venv_python, "-I", script, infra.rabbitmq_url, cwd=tmp_path)

    assert f"round-tripped {len(EVENT_TYPES)} events and {len(COMMAND_TYPES)} commands" in out
