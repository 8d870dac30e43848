"""The Docker Engine API: request bodies (pure), wire formats (pure), the async client, and
registry credentials."""
