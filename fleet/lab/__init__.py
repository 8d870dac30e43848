"""The lab fleet: hosts made of network namespaces with their own sshd and dockerd.

    lab = lab_up("/var/lib/fleet-lab-test", hosts=6, subnet="198.18.1.0/24")
    lab.inventory_path, lab.ssh_key, lab.known_hosts, lab.registry, lab.hosts
    lab_exec(lab, "aws-use1-1", ["docker", "ps"])
    lab_restart_sshd(lab.dir, "aws-use1-1", {"AllowTcpForwarding": "no"})  # a hardened host
    lab_down("/var/lib/fleet-lab-test")

Every function raises fleet.errors.LabError on failure.
"""

from fleet.lab.lifecycle import (
    HostStatus,
    LabStatus,
    Progress,
    lab_down,
    lab_exec,
    lab_restart_sshd,
    lab_status,
    lab_up,
    load_lab,
)
from fleet.lab.spec import DEFAULT_CLOUDS, DEFAULT_DIR, DEFAULT_HOSTS, DEFAULT_SUBNET, LabSpec
from fleet.lab.state import Lab, LabHost

__all__ = [
    "DEFAULT_CLOUDS",
    "DEFAULT_DIR",
    "DEFAULT_HOSTS",
    "DEFAULT_SUBNET",
    "HostStatus",
    "Lab",
    "LabHost",
    "LabSpec",
    "LabStatus",
    "Progress",
    "lab_down",
    "lab_exec",
    "lab_restart_sshd",
    "lab_status",
    "lab_up",
    "load_lab",
]
