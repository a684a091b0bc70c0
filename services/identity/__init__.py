"""identity: portal users, credentials, invitations and account access grants."""
