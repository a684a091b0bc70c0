"""One socket write for the AMQP frames queued together, instead of one write each.

aiormq's connection has one writer task. It takes frames from the connection's queue one
at a time and writes each to the socket: every publish and every acknowledgement is a
``write`` system call. Profiled during seeding, those writes were 7-10 % of each
service's CPU: on loopback, the sender's ``write`` also runs the receiving side of TCP.

Handlers finish in bursts here (their database writes are batched,
``shared.storage.coalesce``), and their acknowledgements queue up behind the writer. In
a 3,000-account bulk, notification's writer found 10 frames waiting (aiormq's queue
holds 10) at 2,036 of its 6,000 wake-ups; crm's and identity's found one frame at most
wake-ups, because a channel's publishes reach the queue one at a time.

:class:`CoalescingFrames` hands the writer everything queued as one frame: the payloads
joined in their order (each payload holds whole AMQP frames, a publish's method, header
and body together, so joining keeps every frame whole and in order), a drain when any of
them asked for one, and the connection's close when the last of them is ``CloseOk``. The
bytes on the wire are exactly those the frames would have written one by one.

Private API, pinned by ``tests/unit/test_frames.py``: aiormq 7's ``Connection.__writer``
iterates ``FrameGenerator(self.write_queue)``, looking the class up in the module at each
connection, so replacing ``aiormq.connection.FrameGenerator`` changes every connection
made after :func:`coalesce_frame_writes`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from aiormq import connection as aiormq_connection
from aiormq.abc import ChannelFrame

MAX_BATCH_BYTES = 1 << 20
"""A burst stops growing at this size: a write stays bounded whatever is queued."""


@dataclasses.dataclass(frozen=True)
class JoinedFrames(ChannelFrame):
    """Several queued frames as one: their payloads joined, each one's drain honoured."""

    frames: tuple[ChannelFrame, ...] = ()

    @classmethod
    def of(cls, frames: Sequence[ChannelFrame]) -> JoinedFrames:
        return cls(
            payload=b"".join(f.payload for f in frames),
            should_close=frames[-1].should_close,
            frames=tuple(frames),
        )

    @property
    def should_drain(self) -> bool:
        return any(f.should_drain for f in self.frames)

    def drain(self) -> None:
        for frame in self.frames:
            frame.drain()


class CoalescingFrames(aiormq_connection.FrameGenerator):
    """aiormq's frame source, yielding every frame already queued as one (see above)."""

    async def __anext__(self) -> ChannelFrame:
        first = await super().__anext__()
        queue: asyncio.Queue[ChannelFrame] = self.queue
        if queue.empty() or first.should_close:
            return first
        frames = [first]
        size = len(first.payload)
        while not queue.empty() and size < MAX_BATCH_BYTES:
            frame = queue.get_nowait()
            queue.task_done()
            frames.append(frame)
            size += len(frame.payload)
            if frame.should_close:  # nothing may follow a connection's close
                break
        return JoinedFrames.of(frames)


def coalesce_frame_writes() -> None:
    """Make every aiormq connection opened from now on write queued frames together."""
    aiormq_connection.FrameGenerator = CoalescingFrames  # type: ignore[misc]
