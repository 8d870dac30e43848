"""What a lab looks like: host names, addresses, labels and kernel resource names (pure)."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import LabError

DEFAULT_DIR = Path("/var/lib/fleet-lab")
DEFAULT_SUBNET = "198.18.0.0/24"
DEFAULT_HOSTS = 6
DEFAULT_CLOUDS: tuple[str, ...] = ("aws", "gcp", "hetzner")
REGISTRY_PORT = 5000
FIRST_HOST_OFFSET = 10  # hosts at .10, .11, ...; .1 is the bridge and the registry
# The benchmarking range (RFC 2544): no real network lives there, so lab traffic can't leak.
ALLOWED_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
IFNAMSIZ = 15  # longest Linux interface name
MAX_REAL_HOSTS = 200  # each costs ≈ 120 MiB (dockerd, containerd, sshd)
# A Linux bridge takes at most 1024 ports; a simulated host costs ≈ 6 MiB (its sshd).
MAX_SIMULATED_HOSTS = 1000


@dataclass(frozen=True)
class Region:
    name: str
    short: str  # used in host names: aws-use1-1
    zones: tuple[str, ...]


# Two real regions per cloud, listed in the order hosts are spread over them.
CLOUD_REGIONS: dict[str, tuple[Region, Region]] = {
    "aws": (
        Region("us-east-1", "use1", ("us-east-1a", "us-east-1b", "us-east-1c")),
        Region("eu-west-1", "euw1", ("eu-west-1a", "eu-west-1b", "eu-west-1c")),
    ),
    "gcp": (
        Region("us-central1", "usc1", ("us-central1-a", "us-central1-b", "us-central1-c")),
        Region("europe-west1", "euw1", ("europe-west1-b", "europe-west1-c", "europe-west1-d")),
    ),
    "hetzner": (
        Region("fsn1", "fsn1", ("fsn1-dc14",)),
        Region("hel1", "hel1", ("hel1-dc2",)),
    ),
    "azure": (
        Region("eastus", "eus", ("eastus-1", "eastus-2", "eastus-3")),
        Region("westeurope", "weu", ("westeurope-1", "westeurope-2", "westeurope-3")),
    ),
    "digitalocean": (
        Region("nyc3", "nyc3", ("nyc3",)),
        Region("ams3", "ams3", ("ams3",)),
    ),
}


@dataclass(frozen=True)
class LabHostSpec:
    """One lab host as it should exist."""

    index: int
    name: str
    address: str
    labels: dict[str, str]
    netns: str
    veth: str


@dataclass(frozen=True)
class LabSpec:
    """The options of `fleet lab up`."""

    dir: Path = DEFAULT_DIR
    hosts: int = DEFAULT_HOSTS
    clouds: tuple[str, ...] = DEFAULT_CLOUDS
    subnet: str = DEFAULT_SUBNET
    simulated: bool = False


def lab_id(lab_dir: Path) -> str:
    """Short stable id of a lab, derived from its directory, so that two labs never share names."""
    return hashlib.sha256(str(lab_dir).encode()).hexdigest()[:6]


def bridge_name(lab: str) -> str:
    return f"flb{lab}"


def netns_name(lab: str, host_name: str) -> str:
    return f"fleet-{lab}-{host_name}"


def veth_name(lab: str, index: int) -> str:
    return f"flv{lab}n{index}"


def is_lab_link(lab: str, link_name: str) -> bool:
    """Whether a root-namespace interface belongs to lab `lab` (its bridge or one of its veths)."""
    return link_name == bridge_name(lab) or link_name.startswith(f"flv{lab}n")


def is_lab_netns(lab: str, netns: str) -> bool:
    return netns.startswith(f"fleet-{lab}-")


def parse_subnet(subnet: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.ip_network(subnet, strict=True)
    except ValueError as exc:
        raise LabError(f"invalid subnet {subnet!r}: {exc}") from exc
    if not isinstance(network, ipaddress.IPv4Network) or not network.subnet_of(ALLOWED_RANGE):
        raise LabError(f"subnet {subnet} must lie inside {ALLOWED_RANGE} (the benchmarking range)")
    return network


def bridge_address(subnet: str) -> str:
    return str(parse_subnet(subnet)[1])


def registry_address(subnet: str) -> str:
    return f"{bridge_address(subnet)}:{REGISTRY_PORT}"


def host_address(subnet: str, index: int) -> str:
    network = parse_subnet(subnet)
    offset = FIRST_HOST_OFFSET + index
    if offset >= network.num_addresses - 1:
        capacity = max(0, network.num_addresses - 1 - FIRST_HOST_OFFSET)
        raise LabError(f"subnet {subnet} has room for {capacity} hosts, not {index + 1}")
    return str(network[offset])


def validate_clouds(clouds: tuple[str, ...]) -> None:
    if not clouds:
        raise LabError("at least one cloud is needed")
    unknown = [cloud for cloud in clouds if cloud not in CLOUD_REGIONS]
    if unknown:
        known = ", ".join(sorted(CLOUD_REGIONS))
        raise LabError(f"unknown cloud {', '.join(unknown)} (known: {known})")
    if len(set(clouds)) != len(clouds):
        raise LabError("each cloud may be named once")


def host_identity(index: int, clouds: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """Name and labels of host `index`.

    Clouds take turns; within a cloud, hosts alternate between its two regions, and within a
    region they cycle through its zones. A host's identity depends only on its index, so growing
    a lab never renames existing hosts.
    """
    cloud = clouds[index % len(clouds)]
    index_in_cloud = index // len(clouds)
    region = CLOUD_REGIONS[cloud][index_in_cloud % 2]
    index_in_region = index_in_cloud // 2
    zone = region.zones[index_in_region % len(region.zones)]
    name = f"{cloud}-{region.short}-{index_in_region + 1}"
    return name, {"cloud": cloud, "region": region.name, "zone": zone}


def plan_hosts(spec: LabSpec) -> list[LabHostSpec]:
    """Every host of the lab described by `spec`, in index order."""
    if spec.hosts < 1:
        raise LabError("a lab needs at least one host")
    most = MAX_SIMULATED_HOSTS if spec.simulated else MAX_REAL_HOSTS
    if spec.hosts > most:
        kind = "simulated" if spec.simulated else "real (use --simulated for more)"
        raise LabError(f"a lab has at most {most} {kind} hosts, not {spec.hosts}")
    validate_clouds(spec.clouds)
    lab = lab_id(spec.dir)
    plans = []
    for index in range(spec.hosts):
        name, labels = host_identity(index, spec.clouds)
        plans.append(
            LabHostSpec(
                index=index,
                name=name,
                address=host_address(spec.subnet, index),
                labels=labels,
                netns=netns_name(lab, name),
                veth=veth_name(lab, index),
            )
        )
    return plans
