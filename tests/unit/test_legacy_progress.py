"""airctl's view of a migration the unversioned worker started: its children's progress."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from contracts.models import Phase, Progress
from workflows.legacy.migration import with_children


def answers(children: dict[str, Progress]) -> Callable[[str], Awaitable[Progress | None]]:
    async def query(workflow_id: str) -> Progress | None:
        return children.get(workflow_id)

    return query


async def test_the_running_child_gives_the_phase_and_lag_and_both_their_steps() -> None:
    parent = Progress(kind="migration", region=7, nodes=[1, 4], phase=Phase.REMOVING)
    parent.steps_done = ["describe region 7"]
    add = Progress(kind="add-peer", region=7, nodes=[4], phase=Phase.DONE, steps_done=["a"])
    remove = Progress(kind="remove-peer", region=7, nodes=[1], phase=Phase.HANDING_OFF, lag=3)
    remove.steps_done = ["r"]
    query = answers({"air-region-7/add-peer": add, "air-region-7/remove-peer": remove})

    shown = await with_children(parent, "air-region-7", query)

    assert shown.steps_done == ["describe region 7", "a", "r"]
    assert (shown.phase, shown.lag) == (Phase.HANDING_OFF, 3)


async def test_a_migration_without_children_shows_as_it_is() -> None:
    parent = Progress(kind="migration", region=7, nodes=[1, 4], phase=Phase.TRANSFERRING, lag=9)

    shown = await with_children(parent.model_copy(deep=True), "air-region-7", answers({}))

    assert shown == parent
