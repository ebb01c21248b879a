"""What an operation of many moves asks to have planned, and the plan it gets back
(`ReadingActivities.plan`): its history holds these, not the cluster's description."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from contracts.models import Move


class DrainPlan(BaseModel):
    kind: Literal["drain"] = "drain"
    node: int
    watermark: float
    allow_less_diverse: bool = False
    nearest_source: bool = True


class RepairPlan(BaseModel):
    kind: Literal["repair"] = "repair"
    node: int
    watermark: float


class RebalancePlan(BaseModel):
    kind: Literal["rebalance"] = "rebalance"
    destinations: list[int] = Field(default_factory=list)  # none: every live node
    watermark: float
    allow_less_diverse: bool = False


class Replan(BaseModel):
    """A planned move to another destination, none of `avoid` (they failed it)."""

    kind: Literal["replan"] = "replan"
    move: Move
    avoid: list[int]
    watermark: float
    allow_less_diverse: bool = False


class PlanRequest(BaseModel):
    plan: DrainPlan | RepairPlan | RebalancePlan | Replan = Field(discriminator="kind")


class PlanMade(BaseModel):
    moves: list[Move] = Field(default_factory=list)
    # regions it leaves as they are, and regions a move leaves less diverse, with why
    kept: dict[int, str] = Field(default_factory=dict)
    under_diversified: dict[int, str] = Field(default_factory=dict)
    refused: str = ""  # why no plan can be made: the operation is refused, nothing changed
