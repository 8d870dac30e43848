"""The lab's daemons: each host's sshd and dockerd, and the registry. Configs are pure text."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from fleet.errors import LabError
from fleet.lab.network import netns_path
from fleet.lab.state import HostState, ProcessRecord
from fleet.lab.system import daemon_env, is_alive, process_record

SSHD = "/usr/sbin/sshd"  # sshd re-executes itself, so it must be started by absolute path

# sshd_config keyword -> value over the lab's own settings; None drops the keyword. E.g. a
# hardened host: {"AllowTcpForwarding": "no"}, {"DisableForwarding": "yes"}, {"Subsystem": None}.
SshdOptions = Mapping[str, str | None]
_KEYWORD = re.compile(r"[A-Za-z]+")


def _apply_sshd_options(lines: list[str], options: SshdOptions) -> list[str]:
    for keyword, value in options.items():
        if not _KEYWORD.fullmatch(keyword) or (value is not None and (
                not value.strip() or any(c in value for c in "\r\n\0"))):
            raise LabError(f"invalid sshd option {keyword!r}: {value!r}")
    wanted = {keyword.lower(): (keyword, value) for keyword, value in options.items()}
    kept = [line for line in lines if line.split(None, 1)[0].lower() not in wanted]
    return kept + [f"{keyword} {value}" for keyword, value in wanted.values()
                   if value is not None]


def render_sshd_config(host: HostState, host_dir: Path, authorized_keys: Path,
                       options: SshdOptions | None = None) -> str:
    """The lab's sshd_config for `host`, with `options` (see SshdOptions) over it."""
    lines = [
        "Port 22",
        f"ListenAddress {host.address}",
        f"HostKey {host_dir / 'ssh_host_ed25519_key'}",
        "PidFile /run/sshd.pid",  # /run is the host's own directory
        f"AuthorizedKeysFile {authorized_keys}",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",  # lab dirs may sit under /tmp in tests
        "AllowTcpForwarding yes",
        "AllowStreamLocalForwarding yes",  # fleet reaches /var/run/docker.sock this way
        "MaxSessions 200",
        "MaxStartups 200:30:400",
        "PrintMotd no",
        "Subsystem sftp internal-sftp",
        f"SetEnv FLEET_LAB_HOST={host.name}",
    ]
    return "\n".join(_apply_sshd_options(lines, options or {})) + "\n"


def render_daemon_json(registry: str) -> str:
    config = {
        "hosts": ["unix:///var/run/docker.sock"],
        "insecure-registries": [registry],
        "log-level": "warn",
    }
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def render_registry_config(address: str, data_dir: Path) -> str:
    # JSON is YAML, and needs no YAML writer.
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(data_dir)}, "delete": {"enabled": True}},
        "http": {"addr": address},
    }
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def in_host(host: HostState, argv: list[str]) -> list[str]:
    """`argv` run inside the host's network and mount namespaces (nsenter, not `ip netns exec`,
    which remounts /sys and hides the cgroup mounts dockerd needs)."""
    uts = [f"--uts={host.uts_ns}"] if host.uts_ns else []
    return [
        "nsenter",
        f"--net={netns_path(host.netns)}",
        f"--mount={host.mount_ns}",
        *uts,
        "--",
        *argv,
    ]


# Daemons outlive this process. A Popen dropped while its process runs joins subprocess's
# list of children that every later Popen polls: with a thousand sshds that is O(n²) waitpids.
_DAEMONS: list[subprocess.Popen[bytes]] = []


def _spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> ProcessRecord:
    with log.open("ab") as output:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            env=env or daemon_env(),
            start_new_session=True,  # survives the CLI and its Ctrl-C
        )
    _DAEMONS.append(process)
    record = process_record(process.pid)
    if record is None:
        raise LabError(f"{argv[0]} exited at once; see {log}")
    return record


def _wait_until(
    ready: Callable[[], bool], record: ProcessRecord, what: str, log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if not is_alive(record):
            raise LabError(f"{what} died while starting; see {log}")
        time.sleep(0.1)
    raise LabError(f"{what} did not answer within {timeout:.0f} s; see {log}")


def start_sshd(host: HostState, host_dir: Path, authorized_keys: Path,
               options: SshdOptions | None = None) -> ProcessRecord:
    config = host_dir / "sshd_config"
    config.write_text(render_sshd_config(host, host_dir, authorized_keys, options))
    log = host_dir / "sshd.log"
    record = _spawn(in_host(host, [SSHD, "-D", "-f", str(config), "-E", str(log)]), log)
    # 30 s: a thousand hosts starting 16 at a time on two busy cores can be slow to answer.
    _wait_until(lambda: sshd_answers(host.address), record, "sshd", log, 30)
    return record


def start_dockerd(host: HostState, host_dir: Path, registry: str) -> ProcessRecord:
    config = host_dir / "daemon.json"
    config.write_text(render_daemon_json(registry))
    log = host_dir / "dockerd.log"
    record = _spawn(in_host(host, ["dockerd", "--config-file", str(config)]), log)
    socket_path = docker_socket(host_dir)
    _wait_until(lambda: dockerd_answers(socket_path), record, "dockerd", log, 90)
    return record


def start_registry(lab_dir: Path, address: str) -> ProcessRecord:
    registry_dir = lab_dir / "registry"
    (registry_dir / "data").mkdir(parents=True, exist_ok=True)
    config = registry_dir / "config.yml"
    config.write_text(render_registry_config(address, registry_dir / "data"))
    log = registry_dir / "registry.log"
    record = _spawn(["docker-registry", "serve", str(config)], log)
    _wait_until(lambda: registry_answers(address), record, "registry", log, 20)
    return record


def simulator_dir(lab_dir: Path) -> Path:
    return lab_dir / "simulator"


def simulator_config(lab_dir: Path) -> Path:
    return simulator_dir(lab_dir) / "config.json"


def simulator_log(lab_dir: Path) -> Path:
    return simulator_dir(lab_dir) / "simulator.log"


def start_simulator(lab_dir: Path) -> ProcessRecord:
    """The Engine API simulator serving every simulated host's socket (fleet.lab.simulator),
    run by this interpreter with this fleet package."""
    log = simulator_log(lab_dir)
    package_root = str(Path(__file__).resolve().parents[2])
    argv = [sys.executable, "-m", "fleet.lab.simulator", str(simulator_config(lab_dir))]
    return _spawn(argv, log, {**daemon_env(), "PYTHONPATH": package_root})


def wait_for_sockets(sockets: list[Path], record: ProcessRecord, log: Path,
                     timeout: float = 60.0) -> None:
    """Until every socket answers /_ping (the simulator binds them all at start or reload)."""
    pending = list(sockets)

    def ready() -> bool:
        pending[:] = [path for path in pending if not dockerd_answers(path, timeout=1.0)]
        return not pending

    _wait_until(ready, record, "the Engine API simulator", log, timeout)


def docker_socket(host_dir: Path) -> Path:
    return host_dir / "run" / "docker.sock"


def sshd_answers(address: str, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=timeout) as connection:
            return connection.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def dockerd_answers(socket_path: Path, timeout: float = 2.0) -> bool:
    """GET /_ping on the host's Docker socket, reached through the host dir from outside."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout)
            connection.connect(str(socket_path))
            connection.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = b""
            while chunk := connection.recv(4096):
                reply += chunk
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]


def registry_answers(address: str, timeout: float = 2.0) -> bool:
    host, port = address.rsplit(":", 1)
    # http.client, not urllib: urllib would honour proxy variables and leave the lab.
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("GET", "/v2/")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()
