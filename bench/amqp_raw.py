"""The raw RabbitMQ limit: aio-pika publish -> consume in two separate processes.

Persistent messages into a quorum queue (like the product's queues), publisher
confirms, manual acks. The consumer prints ``ready`` once it consumes, then one JSON
line with its first and last arrival (wall clock) after ``--count`` messages; the
publisher prints one JSON line with its start and end. Run as
``python -m bench.amqp_raw consume|publish --url URL --queue Q --count N``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time

import aio_pika

BODY = json.dumps({"payload": "x" * 600}).encode()  # about one product event
WINDOW = 200  # confirms in flight


async def consume(url: str, queue_name: str, count: int, timeout: float) -> dict[str, float]:
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=WINDOW)
        queue = await channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        done = asyncio.Event()
        seen = {"count": 0, "first": 0.0, "last": 0.0}

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            await message.ack()
            now = time.time()
            seen["first"] = seen["first"] or now
            seen["last"] = now
            seen["count"] += 1
            if seen["count"] >= count:
                done.set()

        tag = await queue.consume(on_message)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout)
        await queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
    return seen


async def publish(url: str, queue_name: str, count: int) -> dict[str, float]:
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        started = time.time()
        for start in range(0, count, WINDOW):
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(BODY, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=queue_name,
                    )
                    for _ in range(start, min(start + WINDOW, count))
                )
            )
        return {"started": started, "ended": time.time(), "count": count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=("consume", "publish"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    if args.role == "consume":
        result = asyncio.run(consume(args.url, args.queue, args.count, args.timeout))
    else:
        result = asyncio.run(publish(args.url, args.queue, args.count))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
