"""Names, addresses and labels of lab hosts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.errors import LabError
from fleet.lab.spec import (
    IFNAMSIZ,
    MAX_REAL_HOSTS,
    MAX_SIMULATED_HOSTS,
    LabSpec,
    bridge_address,
    bridge_name,
    host_address,
    lab_id,
    plan_hosts,
    registry_address,
    veth_name,
)


def test_default_lab_has_two_regions_per_cloud() -> None:
    hosts = plan_hosts(LabSpec())
    assert [(h.name, h.address, h.labels) for h in hosts] == [
        (
            "aws-use1-1",
            "198.18.0.10",
            {"cloud": "aws", "region": "us-east-1", "zone": "us-east-1a"},
        ),
        (
            "gcp-usc1-1",
            "198.18.0.11",
            {"cloud": "gcp", "region": "us-central1", "zone": "us-central1-a"},
        ),
        (
            "hetzner-fsn1-1",
            "198.18.0.12",
            {"cloud": "hetzner", "region": "fsn1", "zone": "fsn1-dc14"},
        ),
        (
            "aws-euw1-1",
            "198.18.0.13",
            {"cloud": "aws", "region": "eu-west-1", "zone": "eu-west-1a"},
        ),
        (
            "gcp-euw1-1",
            "198.18.0.14",
            {"cloud": "gcp", "region": "europe-west1", "zone": "europe-west1-b"},
        ),
        (
            "hetzner-hel1-1",
            "198.18.0.15",
            {"cloud": "hetzner", "region": "hel1", "zone": "hel1-dc2"},
        ),
    ]


def test_more_hosts_cycle_through_zones() -> None:
    hosts = plan_hosts(LabSpec(hosts=30, clouds=("aws",)))
    use1 = [h for h in hosts if h.labels["region"] == "us-east-1"]
    assert [h.name for h in use1[:4]] == ["aws-use1-1", "aws-use1-2", "aws-use1-3", "aws-use1-4"]
    assert [h.labels["zone"] for h in use1[:4]] == [
        "us-east-1a",
        "us-east-1b",
        "us-east-1c",
        "us-east-1a",
    ]


@given(st.integers(1, 60), st.integers(1, 60))
def test_growing_a_lab_never_renames_hosts(small: int, large: int) -> None:
    small, large = sorted((small, large))
    assert plan_hosts(LabSpec(hosts=large))[:small] == plan_hosts(LabSpec(hosts=small))


def test_host_names_are_unique() -> None:
    names = [h.name for h in plan_hosts(LabSpec(hosts=200, subnet="198.18.0.0/23"))]
    assert len(names) == len(set(names))


def test_bridge_registry_and_host_addresses() -> None:
    assert bridge_address("198.18.1.0/24") == "198.18.1.1"
    assert registry_address("198.18.1.0/24") == "198.18.1.1:5000"
    assert host_address("198.18.1.0/24", 0) == "198.18.1.10"
    assert host_address("198.18.1.0/24", 244) == "198.18.1.254"


def test_subnet_too_small_for_hosts() -> None:
    with pytest.raises(LabError, match="room for 5 hosts"):
        plan_hosts(LabSpec(hosts=6, subnet="198.18.0.0/28"))


@pytest.mark.parametrize("subnet", ["10.0.0.0/24", "198.20.0.0/24", "fd00::/64", "198.18.0.1/24"])
def test_subnets_outside_the_benchmarking_range_are_refused(subnet: str) -> None:
    with pytest.raises(LabError):
        plan_hosts(LabSpec(subnet=subnet))


@pytest.mark.parametrize(
    ("clouds", "message"),
    [((), "at least one cloud"), (("aws", "ibm"), "unknown cloud ibm"), (("aws", "aws"), "once")],
)
def test_bad_clouds(clouds: tuple[str, ...], message: str) -> None:
    with pytest.raises(LabError, match=message):
        plan_hosts(LabSpec(clouds=clouds))


@given(st.text(min_size=1, max_size=80))
def test_interface_names_fit_the_kernel_limit(directory: str) -> None:
    lab = lab_id(Path("/") / directory)
    assert len(bridge_name(lab)) <= IFNAMSIZ
    assert len(veth_name(lab, 9999)) <= IFNAMSIZ


def test_two_lab_dirs_get_different_names() -> None:
    default = plan_hosts(LabSpec(dir=Path("/var/lib/fleet-lab")))[0]
    test = plan_hosts(LabSpec(dir=Path("/var/lib/fleet-lab-test")))[0]
    assert default.name == test.name
    assert default.netns != test.netns
    assert default.veth != test.veth


def test_a_lab_holds_200_real_or_1000_simulated_hosts() -> None:
    big = LabSpec(hosts=MAX_SIMULATED_HOSTS, subnet="198.18.128.0/22", simulated=True)
    assert len(plan_hosts(big)) == 1000
    with pytest.raises(LabError, match="at most 200 real"):
        plan_hosts(LabSpec(hosts=MAX_REAL_HOSTS + 1, subnet="198.18.128.0/22"))
    with pytest.raises(LabError, match="at most 1000 simulated"):
        plan_hosts(LabSpec(hosts=1001, subnet="198.18.128.0/22", simulated=True))
    with pytest.raises(LabError, match="has room for 245 hosts"):
        plan_hosts(LabSpec(hosts=300, simulated=True))
