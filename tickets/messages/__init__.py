"""What the core says: the scripts (texts), notices and the outbox."""
