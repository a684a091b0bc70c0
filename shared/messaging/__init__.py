"""RabbitMQ plumbing: topology, event publishing, consuming with dead-lettering, commands."""
