#!/bin/sh
# The whole test suite: unit tests, then end-to-end tests on a lab of real sshd + dockerd hosts.
set -eu
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
. .venv/bin/activate
ruff check fleet tests benchmarks
mypy
lint-imports --no-cache >/dev/null || lint-imports --no-cache
# Three workers, each with its own lab of 6 hosts (tests/e2e/conftest.py; ≈ 0.75 GiB each):
# e2e tests mostly wait on containers, so on two cores three labs still cut the wall time
# (the longest modules each get a worker). FLEET_TEST_WORKERS=0 runs in one process.
python -m pytest -n "${FLEET_TEST_WORKERS:-3}" --dist loadfile "$@"
