"""The version of the published contract set: AsyncAPI ``info.version`` and the wheel's version.

Semantic versioning over every event and command schema together (docs/contracts.md):
the major goes up when any message gets a new major schema version, the minor when any
schema changes compatibly. Each message also carries its own ``schema_version``.
"""

from __future__ import annotations

CONTRACT_VERSION = "2.2.0"
