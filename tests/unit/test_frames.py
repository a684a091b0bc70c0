"""Queued AMQP frames leave in one write, unchanged and in order; the seam still exists.

No broker here: the frames go through the real ``CoalescingFrames`` over an
``asyncio.Queue`` as aiormq's connection fills it, and the seam it replaces is read from
aiormq's source. The suite's integration tests run every service over such connections.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest
from aiormq import connection as aiormq_connection
from aiormq.abc import ChannelFrame

from shared.messaging import frames
from shared.messaging.frames import CoalescingFrames, JoinedFrames, coalesce_frame_writes


def frame(payload: bytes, *, drained: bool = False, close: bool = False) -> ChannelFrame:
    future = asyncio.get_running_loop().create_future() if drained else None
    return ChannelFrame(payload=payload, should_close=close, drain_future=future)


async def queued(*items: ChannelFrame) -> CoalescingFrames:
    queue: asyncio.Queue[ChannelFrame] = asyncio.Queue(maxsize=10)
    for item in items:
        queue.put_nowait(item)
    return CoalescingFrames(queue)


async def test_frames_queued_together_leave_as_one_payload_in_their_order() -> None:
    source = await queued(frame(b"ack-1"), frame(b"publish-2"), frame(b"ack-3"))

    joined = await anext(source)

    assert joined.payload == b"ack-1publish-2ack-3"
    assert not joined.should_close
    assert source.queue.empty()
    await asyncio.wait_for(source.queue.join(), 1)  # each frame's get is marked done


async def test_a_lone_frame_is_passed_on_as_it_is() -> None:
    lone = frame(b"only")
    source = await queued(lone)

    assert await anext(source) is lone


async def test_each_joined_frame_that_asked_for_a_drain_is_told_once_written() -> None:
    waits, plain = frame(b"a", drained=True), frame(b"b")
    other = frame(b"c", drained=True)
    joined = await anext(await queued(waits, plain, other))

    assert joined.should_drain
    joined.drain()

    assert waits.drain_future is not None and waits.drain_future.done()
    assert other.drain_future is not None and other.drain_future.done()
    assert not joined.should_drain


async def test_nothing_is_joined_after_a_close() -> None:
    source = await queued(frame(b"ack"), frame(b"close-ok", close=True), frame(b"late"))

    joined = await anext(source)

    assert joined.payload == b"ackclose-ok"
    assert joined.should_close
    assert source.queue.qsize() == 1


async def test_a_burst_stops_growing_at_its_size_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames, "MAX_BATCH_BYTES", 10)
    source = await queued(*(frame(b"12345") for _ in range(4)))

    first = await anext(source)

    assert isinstance(first, JoinedFrames)
    assert first.payload == b"1234512345"
    assert source.queue.qsize() == 2


def test_aiormq_still_builds_its_writer_from_the_module_s_frame_generator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writer = inspect.getsource(aiormq_connection.Connection._Connection__writer)  # type: ignore[attr-defined]
    assert "FrameGenerator(self.write_queue)" in writer
    assert "writer.write(channel_frame.payload)" in writer

    monkeypatch.setattr(aiormq_connection, "FrameGenerator", aiormq_connection.FrameGenerator)
    coalesce_frame_writes()
    assert aiormq_connection.FrameGenerator is CoalescingFrames
