#!/bin/sh
# The whole test suite: unit tests, then end-to-end tests on a lab of real sshd + dockerd hosts.
set -eu
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
. .venv/bin/activate
ruff check fleet tests benchmarks
mypy
lint-imports --no-cache >/dev/null || lint-imports --no-cache
# Two workers, each with its own lab (tests/e2e/conftest.py): e2e tests mostly wait on
# containers, so two labs halve the wall time. FLEET_TEST_WORKERS=0 runs in one process.
python -m pytest -n "${FLEET_TEST_WORKERS:-2}" --dist loadfile "$@"
