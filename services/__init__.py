"""The four services: crm, identity, notification, mailsync."""
