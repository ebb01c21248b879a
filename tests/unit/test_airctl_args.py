"""airctl's arguments: the global options go before or after the command; bad ones are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from airctl.args import duration
from airctl.cli import parser
from airctl.up import stack_from
from contracts.errors import UserError
from contracts.rates import AUTO
from node.__main__ import parse_args as node_args


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "--cluster", "c.json", "--namespace", "ns", "status", "--region", "1"],
        ["status", "--region", "1", "--json", "--cluster", "c.json", "--namespace", "ns"],
        ["--json", "status", "--cluster", "c.json", "--region", "1", "--namespace", "ns"],
    ],
)
def test_global_options_go_before_or_after_the_command(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    assert (args.json, args.cluster, args.temporal_namespace) == (True, Path("c.json"), "ns")
    assert args.region == 1


def test_unset_global_options_keep_their_defaults_after_the_command() -> None:
    args = parser().parse_args(["region", "create", "5", "--peers", "1,2"])
    assert (args.json, args.cluster, args.temporal_tls) == (False, None, False)
    up = parser().parse_args(["up", "--tls"])  # the stack's TLS, not Temporal's
    assert up.tls and not up.temporal_tls


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["write", "5", "--count", "-5"], "--count: must be at least 1, not -5"),
        (["load", "5", "--seconds", "0", "--acked-log", "a"], "--seconds: must be above 0"),
        (["drain", "--node", "1", "--max-concurrent", "0"], "must be at least 1, not 0"),
        (["rebalance", "--max-per-node", "0"], "--max-per-node: must be at least 1, not 0"),
        (["throttle", "--node", "1", "--mbps", "fast"], "'fast' is not a rate: MB/s"),
        (["throttle", "--node", "1", "--mbps", "-1"], "a rate cannot be negative"),
        (["check", "--all", "--rate", "0"], "--rate: must be above 0, not 0"),
        (["check", "--all", "--cpu", "-0.5"], "--cpu: must be above 0, not -0.5"),
    ],
)
def test_bad_numbers_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_throttle_is_a_rate_or_auto() -> None:
    assert parser().parse_args(["throttle", "--node", "1", "--mbps", "AUTO"]).mbps == "auto"
    assert parser().parse_args(["throttle", "--node", "1", "--mbps", "40"]).mbps == 40.0


def test_a_node_limits_transfers_with_auto_unless_told_otherwise(tmp_path: Path) -> None:
    given = ["--id", "1", "--listen", "127.0.0.1:1", "--data-dir", str(tmp_path)]
    assert node_args(given).transfer_rate_limit == AUTO
    assert node_args([*given, "--transfer-rate-limit", "0"]).transfer_rate_limit == 0


@pytest.mark.parametrize(("given", "passed"), [([], None), (["0"], "0.0"), (["auto"], AUTO)])
def test_up_passes_the_limit_it_is_given_zero_too(
    tmp_path: Path, given: list[str], passed: str | None
) -> None:
    flag = ["--transfer-rate-limit", *given] if given else []
    args = parser().parse_args(["up", *flag])
    extra = stack_from(args, tmp_path, tmp_path / "cluster.json").nodes[0].extra_args
    flags = dict(zip(extra[::2], extra[1::2], strict=True))  # every node flag takes a value
    assert flags.get("--transfer-rate-limit") == passed


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("24h", 86400), ("1.5d", 129600)]
)
def test_a_duration_reads_in_its_unit(text: str, seconds: float) -> None:
    assert duration(text, "--every").total_seconds() == seconds


@pytest.mark.parametrize("text", ["0s", "24", "h", "-1h", "99999999999d"])
def test_a_bad_duration_is_one_clear_line(text: str) -> None:
    with pytest.raises(UserError, match=f"--check-every takes a duration like 24h.*not '{text}'"):
        duration(text, "--check-every")
