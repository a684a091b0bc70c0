"""``make bench``: the end-to-end benchmark of issue 5 (not part of the test suite).

It seeds a firm through crm's own commands, then measures bulk invitations, the
single-toggle latency, notification fan-out and the services' peak memory, next to
the machine's own limits (a raw aio-pika hop, a raw aiosmtplib sender) measured in
the same run, and writes a table, JSON and a PNG chart under ``bench-results/``.
"""
