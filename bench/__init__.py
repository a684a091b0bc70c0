"""``make bench``: the end-to-end benchmark of issues 5 and 9 (not part of the test suite).

It seeds a firm through crm's own commands, then measures the account and pending
lists at size, bulk invitations with their database writes per invitation and CPU
seconds per 1,000 invitations, the single-toggle latency, notification fan-out and
peak memory (services and the embedded database), next to the machine's own limits
(a raw aio-pika hop, a raw aiosmtplib sender with its CPU) measured in the same run,
and writes a table, JSON and a PNG chart under ``bench-results/``.
"""
