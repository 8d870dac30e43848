"""Kernel resources of the lab: bridge, network namespaces, veths and mount namespaces."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path

from fleet.errors import LabError
from fleet.lab.spec import LabHostSpec
from fleet.lab.system import run

NETNS_DIR = Path("/run/netns")


@dataclass(frozen=True)
class Link:
    name: str
    master: str | None
    up: bool


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def netns_path(netns: str) -> Path:
    return NETNS_DIR / netns


def list_links() -> list[Link]:
    data = json.loads(run(["ip", "-j", "link", "show"]).stdout or "[]")
    return [
        Link(item["ifname"], item.get("master"), "UP" in item.get("flags", [])) for item in data
    ]


def addresses_by_link() -> dict[str, list[ipaddress.IPv4Interface]]:
    data = json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]")
    return {
        item["ifname"]: [
            ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}") for a in item["addr_info"]
        ]
        for item in data
    }


def subnet_users(subnet: str, own_bridge: str) -> list[str]:
    """Interfaces other than our bridge holding an address that overlaps `subnet`."""
    network = ipaddress.ip_network(subnet)
    return sorted(
        name
        for name, addresses in addresses_by_link().items()
        if name != own_bridge and any(a.network.overlaps(network) for a in addresses)
    )


def _disable_ipv6(link: str) -> None:
    # No router solicitations or MLD chatter on the lab's links.
    knob = Path("/proc/sys/net/ipv6/conf") / link / "disable_ipv6"
    if knob.exists():
        knob.write_text("1\n")


def ensure_bridge(name: str, address: str, subnet: str) -> None:
    prefix = ipaddress.ip_network(subnet).prefixlen
    links = {link.name: link for link in list_links()}
    if name not in links:
        run(["ip", "link", "add", name, "type", "bridge"])
    _disable_ipv6(name)
    if ipaddress.IPv4Interface(f"{address}/{prefix}") not in addresses_by_link().get(name, []):
        run(["ip", "addr", "add", f"{address}/{prefix}", "dev", name])
    run(["ip", "link", "set", name, "up"])


def bridge_ok(name: str, address: str) -> bool:
    """Whether the lab's bridge is up with its address (so the lab's subnet stays local)."""
    link = {link.name: link for link in list_links()}.get(name)
    held = addresses_by_link().get(name, [])
    return link is not None and link.up and any(str(a.ip) == address for a in held)


def delete_link(name: str) -> None:
    run(["ip", "link", "del", name], check=False)


def host_mac(address: str) -> str:
    """A locally administered unicast MAC that names the IPv4 address: 02:f1:a:b:c:d."""
    octets = ipaddress.IPv4Address(address).packed
    return ":".join(f"{b:02x}" for b in (0x02, 0xF1, *octets))


def create_host_network(host: LabHostSpec, bridge: str, subnet: str) -> None:
    prefix = ipaddress.ip_network(subnet).prefixlen
    run(["ip", "netns", "add", host.netns])
    run(
        [
            "ip",
            "link",
            "add",
            host.veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            host.netns,
        ]
    )
    _disable_ipv6(host.veth)
    run(["ip", "link", "set", host.veth, "master", bridge, "up"])
    inside = ["ip", "-n", host.netns]
    # A MAC derived from the address: a host rebuilt after a crash answers to the MAC the
    # controller's neighbour cache still holds, instead of being unreachable until it expires.
    run([*inside, "link", "set", "eth0", "address", host_mac(host.address)])
    run([*inside, "addr", "add", f"{host.address}/{prefix}", "dev", "eth0"])
    run([*inside, "link", "set", "eth0", "up"])
    run([*inside, "link", "set", "lo", "up"])


def host_network_ok(host: LabHostSpec, bridge: str, links: dict[str, Link]) -> bool:
    veth = links.get(host.veth)
    if veth is None or veth.master != bridge or not veth.up:
        return False
    if not netns_path(host.netns).exists():
        return False
    result = run(["ip", "-n", host.netns, "-j", "-4", "addr", "show", "eth0"], check=False)
    if result.returncode != 0:
        return False
    data = json.loads(result.stdout or "[]")
    return any(a.get("local") == host.address for item in data for a in item["addr_info"])


NEIGHBOUR_TABLE = Path("/proc/sys/net/ipv4/neigh/default")


def ensure_neighbour_room(entries: int) -> None:
    """Raise (never lower) the root namespace's IPv4 neighbour-table limits to `entries`."""
    for name, wanted in (("gc_thresh1", entries // 4), ("gc_thresh2", entries // 2),
                         ("gc_thresh3", entries)):
        path = NEIGHBOUR_TABLE / name
        try:
            if int(path.read_text()) < wanted:
                path.write_text(f"{wanted}\n")
        except (OSError, ValueError) as exc:
            raise LabError(f"cannot raise {path} to {wanted}: {exc}") from exc


def delete_netns(netns: str) -> None:
    if netns_path(netns).exists():
        run(["ip", "netns", "del", netns], check=False)


def mount_points() -> dict[str, str]:
    """Mount point -> filesystem type, for the root mount namespace."""
    points = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        point = before.split()[4].replace("\\040", " ")
        points[point] = after.split()[0]
    return points


def ensure_private_dir(path: Path) -> None:
    """Make `path` a private mount: persistent mount namespaces may only be bound there."""
    path.mkdir(parents=True, exist_ok=True)
    if str(path) not in mount_points():
        run(["mount", "--bind", str(path), str(path)])
    run(["mount", "--make-private", str(path)])


def release_private_dir(path: Path) -> None:
    if str(path) in mount_points():
        run(["umount", "--lazy", str(path)], check=False)


def ns_file_ok(ns_file: Path) -> bool:
    return mount_points().get(str(ns_file)) == "nsfs"


HOME = Path("/root")  # the lab's users are root


def _detach(enter: list[str], directory: Path) -> None:
    """Detach `directory` and every mount below it inside a new mount namespace."""
    if run([*enter, "umount", "--lazy", str(directory)], check=False).returncode != 0:
        run([*enter, "umount", "--recursive", "--lazy", str(directory)], check=False)


def create_mount_ns(ns_file: Path, host_dir: Path) -> None:
    """A private mount namespace where /run, /var/lib/docker, /etc/docker and /root are the
    host's own.

    So inside the host Docker lives at the standard /var/run/docker.sock and /var/lib/docker,
    and from outside the socket is reachable at HOST_DIR/run/docker.sock. The home dir is what
    fleet keeps its per-host state in (~/.fleet): each host must have its own.
    """
    run_dir, docker_dir, etc_dir = host_dir / "run", host_dir / "docker", host_dir / "etc-docker"
    home_dir = host_dir / "root"
    home_dir.mkdir(mode=0o700, exist_ok=True)
    (run_dir / "sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation dir
    (run_dir / "sshd").chmod(0o755)
    docker_dir.mkdir(parents=True, exist_ok=True)
    etc_dir.mkdir(parents=True, exist_ok=True)
    ns_file.touch()
    run(["unshare", f"--mount={ns_file}", "--propagation", "private", "true"])
    enter = ["nsenter", f"--mount={ns_file}", "--"]
    # The copied mount table holds every lab's netns bind mounts; keeping them here would keep
    # other labs' namespaces (and their veths) alive after those labs go down.
    # One lazy umount detaches the whole tree at once (--recursive umounts each mount in turn:
    # seconds per host once a lab has hundreds).
    _detach(enter, NETNS_DIR)
    # Likewise the lab's own namespace files: at 1,000 hosts, each would hold all the others'.
    _detach(enter, ns_file.parent)
    run([*enter, "mount", "--bind", str(run_dir), "/run"])
    run([*enter, "mkdir", "-p", "/var/lib/docker"])
    run([*enter, "mount", "--bind", str(docker_dir), "/var/lib/docker"])
    # dockerd keeps its identity (key.json) there: one per host, and none written to the root.
    run([*enter, "mkdir", "-p", "/etc/docker"])
    run([*enter, "mount", "--bind", str(etc_dir), "/etc/docker"])
    lab_dir = host_dir.parent.parent
    if HOME in lab_dir.parents:
        # sshd reads its config, host key and authorized_keys from the lab dir on every login:
        # keep it visible at its own path through the host's home.
        keep = home_dir / lab_dir.relative_to(HOME)
        keep.mkdir(parents=True, exist_ok=True)
        run([*enter, "mount", "--bind", str(lab_dir), str(keep)])
    run([*enter, "mount", "--rbind", str(home_dir), str(HOME)])


def create_uts_ns(ns_file: Path, hostname: str) -> None:
    """A persistent UTS namespace, so that `hostname` on a lab host says its name."""
    ns_file.touch()
    run(["unshare", f"--uts={ns_file}", "hostname", hostname])


def delete_ns_file(ns_file: Path) -> None:
    if str(ns_file) in mount_points():
        run(["umount", str(ns_file)], check=False)
    ns_file.unlink(missing_ok=True)


def check_subnet_free(subnet: str, own_bridge: str) -> None:
    users = subnet_users(subnet, own_bridge)
    if users:
        raise LabError(
            f"subnet {subnet} is already used by {', '.join(users)} (another lab?); "
            "pick another with --subnet"
        )
