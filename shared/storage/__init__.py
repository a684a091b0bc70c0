"""MongoDB storage helpers, each built on one guarantee MongoDB gives (ARCHITECTURE.md).

Every helper names the guarantee it relies on: a single-document write is atomic (a
conditional ``update_one`` either matches and applies whole, or matches nothing), and
an insert of an existing ``_id`` fails with a duplicate key. They hold on MongoDB 7/8
and on the embedded server of ``deploy/local.sh`` (mongo-java-server on H2), and the
abstract storage tests (``tests/integration/storage``) prove it on every server.
"""
