"""mailsync: connected mailboxes, synced addresses, synced messages and threads."""
