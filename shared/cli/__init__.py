"""``crmctl``: the staff/operator command-line tool (commands over RabbitMQ request/reply)."""
