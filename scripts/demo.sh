#!/bin/sh
# The demo: install, bring up a 6-host lab over three clouds, deploy playbooks/demo.yml,
# then show the fleet's status and a drift check.
set -eu
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
. .venv/bin/activate
fleet lab up
fleet apply --yes playbooks/demo.yml
fleet status playbooks/demo.yml
fleet check playbooks/demo.yml
echo
echo "Try: . .venv/bin/activate; fleet plan playbooks/demo.yml; fleet lab ssh aws-use1-1"
echo "Tear down: fleet lab down"
