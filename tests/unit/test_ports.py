"""Where a stack picks its ports: its own slice when AIR_PORT_RANGE gives one."""

from __future__ import annotations

import pytest

from stack.processes import PORT_RANGE, PORT_RANGE_VAR, free_ports, port_range


def test_ports_come_from_the_given_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORT_RANGE_VAR, "23000-23100")
    assert port_range() == (23000, 23100)
    ports = free_ports(5) + free_ports(4, consecutive=True)
    assert all(23000 <= p < 23100 for p in ports), ports


def test_without_a_slice_the_default_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORT_RANGE_VAR, raising=False)
    assert port_range() == PORT_RANGE


@pytest.mark.parametrize("given", ["23000", "a-b", "30000-20000", "80-90", "60000-70000"])
def test_a_bad_slice_is_refused_with_the_form_expected(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    monkeypatch.setenv(PORT_RANGE_VAR, given)
    with pytest.raises(ValueError, match=PORT_RANGE_VAR):
        port_range()


def test_a_process_never_hands_out_a_port_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Free is not taken: a port picked for one process stays free until that process binds
    it, so a later pick must not return it again."""
    monkeypatch.setenv(PORT_RANGE_VAR, "24000-24060")
    picked = [p for _ in range(20) for p in free_ports(2)]
    assert len(set(picked)) == len(picked) == 40
    with pytest.raises(RuntimeError, match="no 30 free ports in 24000-24060"):
        free_ports(30)  # 20 are left that this process has not handed out
