"""Background tasks stop for certain, even one that swallows a cancel."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from shared.tasks import cancel_and_wait, within


async def _swallowing_one_cancel(stopped: list[str]) -> None:
    """Ignores the first cancel, as a task inside Python 3.11's wait_for may."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(60)
    try:
        await asyncio.sleep(60)
    finally:
        stopped.append("stopped")


async def test_a_task_that_swallows_a_cancel_is_cancelled_again_until_it_ends() -> None:
    stopped: list[str] = []
    task = asyncio.create_task(_swallowing_one_cancel(stopped))
    await asyncio.sleep(0)
    await within(cancel_and_wait(task), 5)
    assert task.done() and stopped == ["stopped"]


async def test_tasks_that_ended_or_failed_and_none_are_accepted() -> None:
    async def fail() -> None:
        raise RuntimeError("on the way out")

    failed = asyncio.create_task(fail())
    await asyncio.sleep(0)
    await cancel_and_wait(failed, None)
    assert failed.done()


async def test_a_cancel_of_the_caller_waits_for_the_tasks_then_is_raised() -> None:
    stopped: list[str] = []
    child = asyncio.create_task(_swallowing_one_cancel(stopped))
    await asyncio.sleep(0)
    stopping = asyncio.create_task(cancel_and_wait(child))
    await asyncio.sleep(0)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await within(stopping, 5)
    assert child.done() and stopped == ["stopped"]


async def test_within_keeps_a_cancel_that_arrives_as_the_call_finishes() -> None:
    """asyncio.wait_for on Python 3.11 returns the result here and the task runs on."""
    call: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def waiting() -> str:
        await within(call, 5)
        return "ran on after its cancel"

    task = asyncio.create_task(waiting())
    await asyncio.sleep(0)
    call.set_result(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_within_raises_timeout_error_when_the_call_takes_too_long() -> None:
    with pytest.raises(TimeoutError):
        await within(asyncio.sleep(5), 0.05)
