"""Orders: the store (lookups, locks, units) and the importer."""
