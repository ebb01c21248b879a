"""An operation's plan request, answered where the worker plans: each kind by its planner, a
refusal as data (the workflow refuses with it), and every kind through the wire and back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from contracts.activity_models import ClusterDescription
from contracts.errors import InvalidRequest
from contracts.models import Move
from contracts.plans import DrainPlan, PlanRequest, RebalancePlan, RepairPlan, Replan
from planning.balance import plan_rebalance
from planning.placement import plan_drain, plan_repair
from planning.requests import answer
from tests.unit.test_planning import clusters, dead_node_cluster, peer

WATERMARK = 0.85


@settings(max_examples=50, deadline=None)
@given(clusters())
def test_each_kind_is_planned_by_its_planner(cluster: ClusterDescription) -> None:
    node = cluster.nodes[0].node_id
    expected = {
        "drain": lambda: plan_drain(cluster, node, WATERMARK),
        "rebalance": lambda: plan_rebalance(cluster, None, WATERMARK),
    }
    for kind, request in (
        ("drain", DrainPlan(node=node, watermark=WATERMARK)),
        ("rebalance", RebalancePlan(watermark=WATERMARK)),
    ):
        made = answer(cluster, PlanRequest(plan=request))
        try:
            plan = expected[kind]()
        except InvalidRequest as e:
            assert made.refused == str(e) and made.moves == [], (kind, made)
            continue
        assert (made.moves, made.kept, made.under_diversified) == (
            plan.moves,
            plan.kept,
            plan.under_diversified,
        ), kind


def test_a_repair_plans_as_plan_repair() -> None:
    cluster = dead_node_cluster()
    made = answer(cluster, PlanRequest(plan=RepairPlan(node=3, watermark=WATERMARK)))
    plan = plan_repair(cluster, 3, WATERMARK)
    assert made.moves == plan.moves and made.moves and not made.refused


def test_a_plan_that_cannot_be_made_is_refused_with_why() -> None:
    cluster = ClusterDescription(nodes=[peer(1), peer(2)])
    made = answer(cluster, PlanRequest(plan=DrainPlan(node=9, watermark=WATERMARK)))
    assert made.refused.startswith("node 9 is not in the cluster") and made.moves == []


def test_a_move_with_nowhere_else_to_go_is_planned_again_as_none() -> None:
    cluster = ClusterDescription(nodes=[peer(1), peer(2)], holders={7: [1, 2]})
    move = Move(region=7, from_node=1, to_node=3, sources=[2])
    again = Replan(move=move, avoid=[3], watermark=WATERMARK)
    assert answer(cluster, PlanRequest(plan=again)).moves == []


@pytest.mark.parametrize(
    "plan",
    [
        DrainPlan(node=4, watermark=0.8, allow_less_diverse=True, nearest_source=False),
        RepairPlan(node=3, watermark=0.9),
        RebalancePlan(destinations=[4, 5], watermark=0.85),
        Replan(move=Move(region=7, from_node=1, to_node=3), avoid=[3], watermark=0.85),
    ],
)
def test_every_kind_crosses_the_wire_as_itself(
    plan: DrainPlan | RepairPlan | RebalancePlan | Replan,
) -> None:
    request = PlanRequest(plan=plan)
    assert PlanRequest.model_validate_json(request.model_dump_json()) == request
