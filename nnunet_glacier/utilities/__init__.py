"""Used by every stage: atomic writes, locks, made-from records (provenance), CSV tables."""
