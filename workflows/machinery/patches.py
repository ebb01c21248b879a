"""Every `workflow.patched` id in one place: what each guards, every site that asks it, and
when it can retire.

With Worker Versioning (client/versions.py) a pinned workflow never meets another build, so
these matter for what moves between builds: the auto-upgrading operations (drain, rebalance,
repair, autopilot, check). A workflow started before a patch existed replays without it,
command for command; one started after records its marker. A patch retires once no workflow
without its marker runs: first `workflow.deprecate_patch` (new workflows record the marker as
deprecated, which a build without the call skips), a build later the call and its old branch
go, with the dated histories in tests/histories/ that only the old branch replays. Which
builds may still run is the floor's to say: `airctl upgrade check` lists the running
workflows a build older than it started, and the worker refuses to start over them.

- `LEAN`, deprecated: every migration, addition, removal, reconstruction and drain of the
  floor build recorded it before its first step (builds before the floor ran them another way,
  retired with those builds: a migration as two child workflows, a drain planned by replica
  count in one run). Sites: `lean_recorded` below, asked by machinery/reading.py
  `describe_region` and workflows/drain.py `run`. Workflows of this build record the marker
  deprecated, which replays without the call; so the next build deletes the three and the id,
  and with them the histories that hold the marker undeprecated (the floor build's:
  2026-12-01's and the undated ones recorded before this build).
- `STALLS`: stall reports to the parent and the AirStalled attribute. Site: machinery/progress.py
  `stalls_published`.
- `WRITE_OFF`: a peer removed while down is written off. Site: machinery/removal.py.
- `CATCH_UP`: before a peer that is down is removed, every survivor is brought to the longest
  prefix of its writes that any survivor holds (a migration off a node that is gone does it
  first too, told so by its input, `from_node_gone`). Site: machinery/removal.py.
- `UNLINKED_CATCH_UP`: a removal of a node that a repair's addition found absent, and that
  answers again by the removal, waits for its writes on the peers it has channels to, then
  brings the new replica (which no channel from it reaches) to them by a catch-up; without it
  the wait was for every remaining peer, the new one too, and never ended. Site:
  machinery/removal.py.
- `MOVES_RIDE_THROUGH`: an operation's move refused for a node that does not answer waits
  for it, then goes elsewhere or is set aside. Site: machinery/moves.py `_rides_through`.
- `INDIRECT_PROBES`: the autopilot asks the live nodes about a node the worker does not reach
  (activity `probe_views`), and repairs only a node no view reaches; without its marker a run
  goes on with the worker's view alone until it continues as new. Asked first thing in `run`,
  before any local activity. Sites: workflows/autopilot.py `run` (its one line) and
  `_worker_view`; activities/operations.py `probe_nodes`.
- `ZONES`: the autopilot judges zones (a zone none of whose nodes answers is said so, and a
  rebalance starts once it answers again: activity `start_rebalance`) and counts the
  under-diversified regions (activity `under_diversified`, the gauge), and forgets the nodes
  taken out of the directory (a forgotten dead node held every later repair back). Asked first
  thing in
  `run`, beside `INDIRECT_PROBES`. Sites: workflows/autopilot.py `run` and `_placement`,
  planning/watch.py `Watch.zones`.
- `PLANNED_ON_WORKER`: a drain, repair or rebalance has its plan (and a move's new
  destination) made by the worker (activity `plan`), whose result is the plan; before it, the
  workflow described the whole cluster (activity `describe_cluster`, about 40 bytes a region
  in its history) and planned from that. Both make the plan with `planning.requests.answer`.
  Site: machinery/reading.py `plan`, asked by machinery/operation.py `_plan` and `_replan`.

The dated histories and the markers they hold (read from the files): tests/histories/2026-12-01
`LEAN` and `STALLS` (its rebalances and repairs `STALLS` only, its autopilot none), 2026-12-07
the autopilot's recorded before `INDIRECT_PROBES` (none), and a drain's, two rebalances' and a
repair's recorded before `PLANNED_ON_WORKER`; the undated ones hold every patch their steps
reach, but `ZONES`, which only the zones test's autopilot holds (test_regions_span_*;
test_the_autopilot_*'s were recorded before it), and `PLANNED_ON_WORKER`, which only the four
recorded anew with it hold (test_drain_moves_*, test_a_rebalance_onto_*,
test_a_balanced_cluster_*, test_a_dead_nodes_*). `STALLS`, `WRITE_OFF`, `CATCH_UP` and
`MOVES_RIDE_THROUGH` each retire the histories of 2026-12-01 that reach their sites without
their markers, `INDIRECT_PROBES` the autopilot histories of 2026-12-01 and 2026-12-07, `ZONES`
every autopilot history but the zones test's, and `PLANNED_ON_WORKER` every drain, rebalance
and repair history but those four.

A patch is asked where the workflow resumes from a regular activity or a child, never right
after a local activity: a workflow task can end with a local activity's marker (when the
activity outlasts the task's heartbeat), and on replay a patch asked right after it is answered
"not patched" before its marker is reached, and the replay fails ("patch marker encountered
... but there is no corresponding change command"), as a repair's migration would after a worker
restart.
"""

from __future__ import annotations

from temporalio import workflow

LEAN = "lean-workflows"
STALLS = "publish-stalls"
WRITE_OFF = "write-off-dead-peer"
CATCH_UP = "catch-up-dead-origin"
UNLINKED_CATCH_UP = "unlinked-catch-up"
MOVES_RIDE_THROUGH = "moves-ride-through"
INDIRECT_PROBES = "indirect-probes"
ZONES = "zones"
PLANNED_ON_WORKER = "planned-on-worker"


def lean_recorded() -> None:
    """Record `LEAN`'s marker, deprecated, where the floor build asked it. A history that holds
    the marker undeprecated replays only if the workflow asks for it there (a marker that no
    code asks for fails the replay: "Non-deprecated patch marker encountered"). Outside a
    workflow (a benchmark runs the steps in process) there is nothing to record."""
    if workflow.in_workflow():
        workflow.deprecate_patch(LEAN)
