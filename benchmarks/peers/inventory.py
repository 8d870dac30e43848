"""pyinfra inventory of the lab: run.py writes the hosts as JSON (PEERS_HOSTS_JSON) from the
lab's inventory; this file only reads it (no code is generated)."""

import json
import os

with open(os.environ["PEERS_HOSTS_JSON"], encoding="utf-8") as source:
    hosts = [(entry["name"], entry["data"]) for entry in json.load(source)]
