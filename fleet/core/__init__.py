"""The pure core: desired state, observed-state parsing, diff, plan, resource mapping,
rollout schedule and policy, health judgements, revision choice, journal and lease codecs.

Nothing here performs I/O or imports asyncio, asyncssh, httpx, rich or click (checked by
the import contract in pyproject.toml and tests/unit/test_architecture.py).
"""
