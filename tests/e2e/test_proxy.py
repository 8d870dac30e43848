"""The per-host proxy end to end: swaps on a fixed host port under load from the controller
drop nothing, a broken release never takes a request, a long request survives its swap, a
killed proxy is drift that apply heals, and two services share a port by host name."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import container_labels, docker, fleet, fleet_json, write_playbook

from fleet.lab import Lab
from fleet.lab.images import PROXY_IMAGE, seed_image

PROJECT = "e2eproxy"
PORT = 8081  # not the other tests' 8080: a leftover of theirs can't be in the way
RATE = 25  # requests per second per host, each on a new connection
THREADS_PER_HOST = 3


def web(registry: str, version: str, *, drain: str = "2s", **proxy: Any) -> dict[str, Any]:
    return {
        "image": f"{registry}/demo/web:{version}",
        "proxy": {"ports": [PORT], "container_port": 8080, "drain": drain, **proxy},
        "healthcheck": {"test": ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/health"],
                        "interval": "500ms", "retries": 2},
        "update": {"batch": "100%", "monitor": "1s", "timeout": "20s"},
    }


def playbook(lab: Lab, path: Path, services: dict[str, Any]) -> Path:
    return write_playbook(path, PROJECT, lab.inventory_path, services,
                          proxy={"image": f"{lab.registry}/lab/caddy:2.6"})


def get(address: str, path: str = "/", host: str | None = None,
        timeout: float = 5.0) -> tuple[int, str]:
    connection = http.client.HTTPConnection(address, PORT, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": host} if host else {})
        response = connection.getresponse()
        return response.status, response.read().decode().strip()
    finally:
        connection.close()


class Load:
    """RATE requests a second to every host's public port, from the controller."""

    def __init__(self, lab: Lab) -> None:
        self.addresses = [h.address for h in lab.hosts]
        self.answers: Counter[tuple[str, str]] = Counter()  # (address, body or error)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        # Open loop: each host's requests are due on a fixed schedule, shared by a few
        # threads, so a slow answer (a loaded CI machine) doesn't lower the rate.
        self.threads = [threading.Thread(target=self._run, args=(a, k), daemon=True)
                        for a in self.addresses for k in range(THREADS_PER_HOST)]

    def _run(self, address: str, offset: int) -> None:
        period = THREADS_PER_HOST / RATE
        due = time.monotonic() + offset / RATE
        while not self.stop.is_set():
            try:
                status, body = get(address, timeout=2.0)
                answer = body if status == 200 else f"HTTP {status}"
            except OSError as exc:
                answer = f"error {type(exc).__name__}"
            with self.lock:
                self.answers[(address, answer)] += 1
            due += period
            self.stop.wait(max(0.0, due - time.monotonic()))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def failures(self) -> dict[tuple[str, str], int]:
        return {key: n for key, n in self.answers.items() if not key[1].startswith("v")}

    def bodies(self) -> set[str]:
        return {body for _, body in self.answers}

    def per_host(self) -> Counter[str]:
        counted: Counter[str] = Counter()
        for (address, _), n in self.answers.items():
            counted[address] += n
        return counted


@pytest.fixture()
def empty(lab: Lab, tmp_path: Path) -> Iterator[Path]:
    path = playbook(lab, tmp_path / "empty.yml", {})
    yield path
    fleet("apply", "--yes", str(path))


def test_swaps_on_a_fixed_port_drop_nothing_and_a_broken_release_takes_no_request(
        lab: Lab, tmp_path: Path, empty: Path) -> None:
    v1 = playbook(lab, tmp_path / "v1.yml", {"web": web(lab.registry, "v1", drain="10s")})
    fleet("apply", "--yes", str(v1), check_rc=0)
    assert {get(h.address)[1] for h in lab.hosts} == {"v1"}
    fleet("check", str(v1), check_rc=0)  # the proxy's routes are in sync too

    slow: dict[str, Any] = {}

    def long_request() -> None:
        slow["answer"] = get(lab.hosts[0].address, "/cgi-bin/slow?6", timeout=30)

    v2 = playbook(lab, tmp_path / "v2.yml", {"web": web(lab.registry, "v2", drain="10s")})
    with Load(lab) as load:
        time.sleep(1)
        in_flight = threading.Thread(target=long_request)
        in_flight.start()  # on v1, when the swap starts; v1 drains for 10 s
        started = time.monotonic()
        fleet("apply", "--yes", str(v2), check_rc=0)
        seconds = time.monotonic() - started
        time.sleep(1)
        in_flight.join()
    assert load.failures() == {}, load.answers
    assert load.bodies() == {"v1", "v2"}
    for address, count in load.per_host().items():
        assert count >= 20 * (seconds + 2) * 0.8, (address, count, seconds)
    assert slow["answer"] == (200, "slow v1 6")
    assert {get(h.address)[1] for h in lab.hosts} == {"v2"}

    v3 = playbook(lab, tmp_path / "v3.yml", {"web": web(lab.registry, "v3", drain="10s")})
    with Load(lab) as load:
        time.sleep(1)
        result = fleet("apply", "--yes", str(v3))
        time.sleep(1)
    assert result.returncode == 1, result.stdout + result.stderr
    assert load.failures() == {}, load.answers
    assert load.bodies() == {"v2"}  # v3 never answered a request
    fleet("check", str(v2), check_rc=0)  # v2 runs everywhere, and the proxy routes to it


def test_a_killed_proxy_is_drift_and_apply_heals_it(lab: Lab, tmp_path: Path,
                                                     empty: Path) -> None:
    path = playbook(lab, tmp_path / "web.yml", {"web": web(lab.registry, "v1")})
    fleet("apply", "--yes", str(path), check_rc=0)
    host = lab.hosts[0]
    docker(lab, host.name, "kill", f"{PROJECT}-fleet-proxy-1")
    with pytest.raises(OSError):
        get(host.address, timeout=2)
    report = fleet_json("check", str(path), check_rc=2)
    drift = [f for f in report["findings"] if f["kind"] != "in_sync"]
    assert [(f["host"], f["service"], f["kind"]) for f in drift] == [
        (host.name, "fleet-proxy", "stopped")]
    fleet("apply", "--yes", str(path), check_rc=0)
    assert get(host.address) == (200, "v1")  # it came back with its routes (--resume)
    fleet("check", str(path), check_rc=0)


def holders(lab: Lab) -> dict[str, str]:
    """Each host's holder of the proxy's ports, by container id."""
    return {h.name: docker(lab, h.name, "inspect", "--format", "{{.Id}}",
                           f"{PROJECT}-fleet-proxy-ports-1").strip() for h in lab.hosts}


def test_a_new_proxy_image_takes_over_without_dropping_a_request(lab: Lab, tmp_path: Path,
                                                                 empty: Path) -> None:
    # A second build of the lab's Caddy (its version label differs, so its digest does).
    seed_image(lab.registry, replace(PROXY_IMAGE, tag="2.6-next"))
    services = {"web": web(lab.registry, "v1")}
    first = playbook(lab, tmp_path / "first.yml", services)
    fleet("apply", "--yes", str(first), check_rc=0)
    newer = write_playbook(tmp_path / "newer.yml", PROJECT, lab.inventory_path, services,
                           proxy={"image": f"{lab.registry}/lab/caddy:2.6-next"})
    held = holders(lab)
    plan = fleet_json("plan", str(newer), check_rc=2)
    # Caddy is replaced start-first; the holder of the ports is not touched.
    assert {a["target"] for h in plan["hosts"] for a in h["actions"]
            if a["kind"] != "pull"} == {f"{PROJECT}-fleet-proxy-1"}
    with Load(lab) as load:
        time.sleep(1)
        fleet("apply", "--yes", str(newer), check_rc=0)
        time.sleep(1)
    assert load.failures() == {}, load.answers
    assert load.bodies() == {"v1"}
    for host in lab.hosts:
        labels = container_labels(lab, host.name, f"{PROJECT}-fleet-proxy-1")
        assert labels["fleet.image"].endswith("/lab/caddy:2.6-next"), (host.name, labels)
    assert holders(lab) == held  # the holders of the ports were never replaced
    fleet("check", str(newer), check_rc=0)


def test_two_services_share_the_proxy_by_host_name(lab: Lab, tmp_path: Path,
                                                   empty: Path) -> None:
    path = playbook(lab, tmp_path / "two.yml", {
        "shop": web(lab.registry, "v1", hostnames=["shop.example.test"]),
        "blog": web(lab.registry, "v2", hostnames=["blog.example.test"]),
    })
    fleet("apply", "--yes", str(path), check_rc=0)
    for host in lab.hosts:
        assert get(host.address, host="shop.example.test") == (200, "v1")
        assert get(host.address, host="blog.example.test") == (200, "v2")
        assert get(host.address, host="other.example.test")[0] != 200
    routes = fleet_json("status", str(path), check_rc=0)["routes"]
    assert {(r["host"], r["route"], tuple(r["containers"])) for r in routes} == {
        (host.name, f"fleet-{service}-{PORT}", (f"{PROJECT}-{service}-1",))
        for host in lab.hosts for service in ("shop", "blog")}


def _certificate(directory: Path, name: str) -> None:
    """A self-signed certificate for `name` (cert.pem, key.pem), and nothing else trusted."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


def _https_get(address: str, port: int, name: str, cafile: Path) -> str:
    import socket
    import ssl

    context = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection((address, port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=name) as tls:
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    head, _, body = answer.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200"), head
    return body.strip()


def test_tls_from_files_is_served_by_host_name(lab: Lab, tmp_path: Path, empty: Path) -> None:
    _certificate(tmp_path, "shop.example.test")
    service = web(lab.registry, "v2", hostnames=["shop.example.test"], ports=[8443],
                  tls={"certificate": "shop_cert", "key": "shop_key"})
    path = write_playbook(tmp_path / "tls.yml", PROJECT, lab.inventory_path, {"shop": service},
                          proxy={"image": f"{lab.registry}/lab/caddy:2.6"},
                          secrets={"shop_cert": {"file": "cert.pem"},
                                   "shop_key": {"file": "key.pem"}})
    fleet("apply", "--yes", str(path), check_rc=0)
    for host in lab.hosts[:2]:
        assert _https_get(host.address, 8443, "shop.example.test", tmp_path / "cert.pem") == "v2"
    fleet("check", str(path), check_rc=0)
