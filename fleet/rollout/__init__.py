"""Rolling updates: waves, batches, canary, health gates and automatic rollback."""
