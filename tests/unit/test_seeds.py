"""Region seeds, the pure part (fleet.core.seeds), the run's TLS (fleet.images.seed_tls) and
the playbook's `seeds:` key."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given
from hypothesis import strategies as st

from fleet.config.inventory import Host
from fleet.config.problems import ConfigError
from fleet.config.project import ProjectFiles, read_project
from fleet.core.desired import DesiredState, desired_state
from fleet.core.seeds import (
    SeedPolicy,
    registry_config,
    seed_of_groups,
    seed_reference,
    seeded_deliveries,
)
from fleet.images.seed_tls import SeedAuthority


def host(name: str, region: str | None, address: str = "198.18.0.10",
         **labels: str) -> Host:
    found = {**labels, **({"region": region} if region is not None else {})}
    return Host(name, address, labels=found)


def test_each_region_has_its_first_host_by_name_as_seed() -> None:
    hosts = [host("b", "eu"), host("a", "eu"), host("c", "us"), host("lone", None)]
    assert seed_of_groups(hosts, SeedPolicy()) == {"a": "a", "b": "a", "c": "c"}


def test_a_seed_must_carry_the_policys_labels_and_have_a_registry_name() -> None:
    hosts = [host("a", "eu"), host("b", "eu", role="seed"), host("c", "us"),
             host("d", "ap", role="seed", address="2001:db8::1")]
    policy = SeedPolicy(labels={"role": "seed"})
    # "us" has no host carrying role=seed; "ap"'s only one is reached over IPv6.
    assert seed_of_groups(hosts, policy) == {"a": "b", "b": "b"}
    assert seed_of_groups([host("x", "eu", address="web1.example.com")],
                          SeedPolicy()) == {"x": "x"}


def test_grouping_by_another_label() -> None:
    hosts = [host("a", "eu", cloud="aws"), host("b", "us", cloud="aws")]
    assert seed_of_groups(hosts, SeedPolicy(by="cloud")) == {"a": "a", "b": "a"}


def test_only_groups_where_more_than_one_host_needs_an_image_go_through_a_seed() -> None:
    seeds = {"a": "a", "b": "a", "c": "a", "x": "x", "y": "x"}
    needs = {
        "sha256:1": {"a", "b", "c", "x", "lone"},  # x alone in its group: sent directly
        "sha256:2": {"b", "c"},  # the seed needs none of it: it relays
        "sha256:3": {"y"},
    }
    assert seeded_deliveries(needs, seeds) == {
        ("b", "sha256:1"): "a", ("c", "sha256:1"): "a",
        ("b", "sha256:2"): "a", ("c", "sha256:2"): "a",
    }


@given(st.dictionaries(st.sampled_from("abcdef"), st.sampled_from("pq"), min_size=1),
       st.sets(st.sampled_from("abcdefg")))
def test_a_seed_never_pulls_from_itself_and_peers_share_its_group(
        regions: dict[str, str], needing: set[str]) -> None:
    hosts = [host(name, region) for name, region in regions.items()]
    seeds = seed_of_groups(hosts, SeedPolicy())
    through = seeded_deliveries({"sha256:1": needing}, seeds)
    for (peer, _), seed in through.items():
        assert peer != seed and regions[peer] == regions[seed] and peer in needing


def test_names_and_configuration() -> None:
    assert seed_reference("198.18.0.10", 5443, "sha256:" + "ab" * 32) == \
        "198.18.0.10:5443/fleet-seed/" + "ab" * 32
    config = registry_config(5443)
    assert "addr: :5443" in config and "clientcas: [/fleet-seed/ca.crt]" in config


def test_the_runs_certificates_chain_to_its_ca() -> None:
    authority = SeedAuthority()
    ca = x509.load_pem_x509_certificate(authority.ca_certificate)
    server = x509.load_pem_x509_certificate(authority.server("198.18.0.10").certificate)
    client = x509.load_pem_x509_certificate(authority.client.certificate)
    for leaf in (server, client):
        leaf.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("198.18.0.10")]
    usage = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    named = x509.load_pem_x509_certificate(authority.server("seed.example.com").certificate)
    assert named.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == \
        ["seed.example.com"]
    assert SeedAuthority().ca_certificate != authority.ca_certificate  # one CA per run


def load_project(paths: list[Path]) -> DesiredState:
    return desired_state(read_project(ProjectFiles([str(p) for p in paths]), environ={}))


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_playbooks_seeds_key(tmp_path: Path) -> None:
    inventory = write(tmp_path / "inv.yml", "hosts: {a: {address: 198.18.0.10, "
                                            "labels: {region: eu}}}\n")
    playbook = write(tmp_path / "p.yml", f"project: p\ninventory: {inventory}\n"
                     "seeds: {by: zone, labels: {seed: 'yes'}, image: reg.example/registry:2, "
                     "port: 6000}\nservices: {}\n")
    state = load_project([playbook])
    assert state.seeds == SeedPolicy("zone", {"seed": "yes"}, "reg.example/registry:2", 6000)
    assert load_project([write(tmp_path / "q.yml", f"project: p\ninventory: {inventory}\n"
                                                   "services: {}\n")]).seeds is None


@pytest.mark.parametrize(("seeds", "said"), [
    ("{port: 0}", "seeds.port"),
    ("{image: 'Not An Image'}", "seeds.image"),
    ("{by: region, typo: 1}", "seeds.typo"),
])
def test_a_bad_seeds_key_is_an_error_naming_it(tmp_path: Path, seeds: str, said: str) -> None:
    inventory = write(tmp_path / "inv.yml", "hosts: {a: {address: 198.18.0.10}}\n")
    playbook = write(tmp_path / "p.yml", f"project: p\ninventory: {inventory}\n"
                     f"seeds: {seeds}\nservices: {{}}\n")
    with pytest.raises(ConfigError) as caught:
        load_project([playbook])
    assert said in str(caught.value) and "p.yml:3" in str(caught.value)


def test_the_plan_names_each_seed_and_the_hosts_it_serves() -> None:
    from fleet.core.plan import HostPlan, Plan, load_action
    from fleet.core.seed_plan import plan_seeds, seed_summary

    image = "sha256:" + "ab" * 32
    hosts = {h.name: h for h in [host("a", "eu"), host("b", "eu"), host("c", "eu"),
                                 host("x", "us")]}
    loads = {name: (load_action(name, "shop/web:1", image, "shop-web-1"),)
             for name in ("b", "c", "x")}
    plan = Plan("shop", tuple(HostPlan(name, (), loads.get(name, ())) for name in hosts))
    through = plan_seeds(plan, hosts, SeedPolicy())
    # "a" needs nothing itself: it relays for "b" and "c"; "x" is alone in its region.
    assert through == {("b", image): "a", ("c", image): "a"}
    assert seed_summary(through) == [("a", image, ["b", "c"])]
    assert plan_seeds(plan, hosts, None) == {}
