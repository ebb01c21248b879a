"""An operation's plan request answered from the cluster's description: one place that names
the planner of each, wherever the plan is made (the worker's activity, or an old workflow)."""

from __future__ import annotations

from contracts.activity_models import ClusterDescription
from contracts.errors import InvalidRequest
from contracts.plans import DrainPlan, PlanMade, PlanRequest, RebalancePlan, RepairPlan, Replan
from planning.balance import plan_rebalance
from planning.placement import Plan, plan_drain, plan_repair, replan_move


def answer(cluster: ClusterDescription, request: PlanRequest) -> PlanMade:
    """The plan, or why none can be made (`refused`)."""
    try:
        made = _plan(cluster, request.plan)
    except InvalidRequest as e:
        return PlanMade(refused=str(e))
    return PlanMade(moves=made.moves, kept=made.kept, under_diversified=made.under_diversified)


def _plan(
    cluster: ClusterDescription, plan: DrainPlan | RepairPlan | RebalancePlan | Replan
) -> Plan:
    match plan:
        case DrainPlan():
            return plan_drain(
                cluster, plan.node, plan.watermark, plan.allow_less_diverse, plan.nearest_source
            )
        case RepairPlan():
            return plan_repair(cluster, plan.node, plan.watermark)
        case RebalancePlan():
            return plan_rebalance(
                cluster, plan.destinations or None, plan.watermark, plan.allow_less_diverse
            )
        case Replan():
            move = replan_move(
                cluster, plan.move, set(plan.avoid), plan.watermark, plan.allow_less_diverse
            )
            return Plan(moves=[move] if move is not None else [])
