"""The autopilot holds its repairs while more than one node is down (a partition is not a
death), however long; once at most one is, the one down past dead_after is repaired. The real
workflow in a WorkflowEnvironment on the session's dev server, its activities faked."""

from __future__ import annotations

from temporalio.client import Client

from contracts.activity_models import NodeView, Reach
from tests.support.waiting import eventually
from tests.workflow.fake_autopilot import DEAD_AFTER_S, UP, Probed, autopilot, probes_past

DOWN = NodeView(reach=Reach.DOWN, asked=[1, 2])


async def test_no_repair_while_two_nodes_are_down_then_the_one_still_down_is(
    client: Client,
) -> None:
    probed = Probed()
    probed.views[3] = probed.views[4] = DOWN
    async with autopilot(client, probed) as status:
        held = await eventually(status, lambda s: bool(s.paused), what="repairs held")
        await probes_past(
            probed, 3 * DEAD_AFTER_S, what="probes for three times dead_after with both down"
        )
        still = await status()
        assert probed.repairs == [] and still.repairing == [], still
        assert (
            held.paused
            == still.paused
            == (
                "nodes [3, 4] do not answer at once: a partition is not a death; "
                "no repair starts until at most one is down"
            )
        )

        probed.views[4] = UP  # back: node 3 alone is down, long past dead_after
        repairing = await eventually(
            status, lambda s: s.repairing == [3], what="node 3 repaired once alone down"
        )

    assert probed.repairs == [3], probed.repairs
    assert repairing.paused == "" and repairing.down_since.keys() == {3}, repairing
    decisions = [d.what for d in repairing.decisions]
    lifted = decisions.index("at most one node is down: repairs may start again")
    assert decisions[lifted + 1].startswith("node 3 declared dead after"), decisions


def in_zones(views: dict[int, NodeView]) -> dict[int, NodeView]:
    """Nodes 1 and 3 in zone a, 2 and 4 in zone b."""
    return {n: v.model_copy(update={"zone": f"zone={'ab'[(n - 1) % 2]}"}) for n, v in views.items()}


async def test_a_zone_down_is_held_as_a_partition_and_its_return_starts_a_rebalance(
    client: Client,
) -> None:
    """Both nodes of zone b silent past dead_after: no repair, and the autopilot says the
    zone does not answer; back, it starts one rebalance and says why. It looks at the
    placement at its first probe (the gauge)."""
    probed = Probed()
    probed.views = in_zones({1: UP, 2: DOWN, 3: UP, 4: DOWN})
    async with autopilot(client, probed) as status:
        held = await eventually(status, lambda s: bool(s.paused), what="repairs held")
        assert held.paused.startswith("zone b does not answer: a partition is not a death")
        await probes_past(probed, 3 * DEAD_AFTER_S, what="zone b down long")
        assert probed.repairs == [] and probed.rebalances == []
        probed.views = in_zones(dict.fromkeys((1, 2, 3, 4), UP))
        back = await eventually(
            status,
            lambda s: any("started air-rebalance" in d.what for d in s.decisions),
            what="a rebalance once zone b answers again",
        )

    assert probed.rebalances == [["zone=b"]] and probed.repairs == []
    assert probed.placement_looks, "the placement was never looked at"
    decisions = [d.what for d in back.decisions]
    assert "zone b does not answer: every node of it is down" in decisions
    assert "zone b answers again" in decisions
