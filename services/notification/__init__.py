"""notification: emails to clients (invitations, system notifications) from its own projection."""
