#!/bin/sh
# The whole test suite: unit tests, then end-to-end tests on a lab of real sshd + dockerd hosts.
set -eu
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
. .venv/bin/activate
ruff check fleet tests benchmarks
mypy
lint-imports --no-cache >/dev/null || lint-imports --no-cache
python -m pytest "$@"
