"""The rollout schedule: waves, batches, canary, failure budget."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleet.config.inventory import Host
from fleet.config.service import UpdatePolicy
from fleet.core.schedule import Batch, failure_budget, quantity, schedule

CLOUDS = ["aws", "gcp", "hetzner"]


def hosts(count: int) -> list[Host]:
    return [Host(name=f"h{i}", address=f"198.18.9.{i}", labels={"cloud": CLOUDS[i % 3]})
            for i in range(count)]


def names(batches: list[Batch]) -> list[tuple[str, tuple[str, ...], bool]]:
    return [(s.wave, s.hosts, s.canary) for s in batches]


def test_one_wave_per_label_value_in_inventory_order() -> None:
    batches = schedule(hosts(6), UpdatePolicy(waves="cloud", batch=2))
    assert names(batches) == [("cloud=aws", ("h0", "h3"), False),
                            ("cloud=gcp", ("h1", "h4"), False),
                            ("cloud=hetzner", ("h2", "h5"), False)]


def test_pattern_waves_and_the_rest_last() -> None:
    batches = schedule(hosts(6), UpdatePolicy(waves=["cloud=hetzner", "h1"], batch="50%"))
    assert names(batches) == [("cloud=hetzner", ("h2",), False), ("cloud=hetzner", ("h5",), False),
                            ("h1", ("h1",), False),
                            ("(rest)", ("h0", "h3"), False), ("(rest)", ("h4",), False)]


def test_canary_goes_first_alone() -> None:
    batches = schedule(hosts(6), UpdatePolicy(waves="cloud", batch=5, canary=1))
    assert names(batches)[:2] == [("cloud=aws", ("h0",), True), ("cloud=aws", ("h3",), False)]


def test_hosts_without_the_label_form_a_last_wave() -> None:
    fleet = [*hosts(2), Host(name="bare", address="198.18.9.99")]
    assert [s.wave for s in schedule(fleet, UpdatePolicy(waves="cloud"))] == [
        "cloud=aws", "cloud=gcp", "(no cloud)"]


def test_quantities() -> None:
    assert quantity("25%", 10, at_least_one=True) == 3
    assert quantity("25%", 2, at_least_one=True) == 1
    assert failure_budget(UpdatePolicy(max_failures="25%"), 10) == 2
    assert failure_budget(UpdatePolicy(), 10) == 0


@given(count=st.integers(0, 40), batch=st.one_of(st.integers(1, 10),
                                                 st.sampled_from(["10%", "50%", "100%"])),
       canary=st.integers(0, 3), by_label=st.booleans())
def test_every_host_exactly_once_and_batches_bounded(count: int, batch: int | str, canary: int,
                                                     by_label: bool) -> None:
    fleet = hosts(count)
    policy = UpdatePolicy(waves="cloud" if by_label else None, batch=batch, canary=canary)
    batches = schedule(fleet, policy)
    flat = [h for s in batches for h in s.hosts]
    assert sorted(flat) == sorted(h.name for h in fleet)
    assert all(s.hosts for s in batches)
    assert all(len(s.hosts) <= canary for s in batches if s.canary)


def test_a_percentage_canary_is_at_least_one_host() -> None:
    assert schedule(hosts(5), UpdatePolicy(canary="10%"))[0].canary
    assert not any(s.canary for s in schedule(hosts(5), UpdatePolicy(canary="0%")))
