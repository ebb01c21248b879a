"""Every `workflow.patched` id, and the gate for workflows of the unversioned worker, in one
place: what each guards, every site that asks it, and when it can retire.

With Worker Versioning (client/versions.py) a pinned workflow never meets another build, so
these matter for what moves between builds: the auto-upgrading operations, and workflows the
unversioned worker started (they move to the current build). A workflow started before a patch
existed replays without it, command for command; one started after records its marker. A patch
retires (`workflow.deprecate_patch`, then deletion) once no workflow without its marker runs;
the dated histories in tests/histories/ recorded before it retire with it (listed below).

- `LEAN`: workflows of the unversioned worker (no marker) run as it ran them
  (workflows/legacy/). Sites to delete: `unversioned_start` below and its one line in
  workflows/migration.py `run` and workflows/drain.py `run`; machinery/steps.py `Runner.lean`
  (the options it picks in `Runner.run`, `Steps.describe` and the boundary step's;
  bench/migrate.py's `InProcess` overrides it); the package workflows/legacy/ and
  airctl/progress.py's use of its `with_children`; machinery/operation.py `steer` and the
  `Steered` base of machinery/moves.py (fold it into `Mover`); contracts/models.py
  `Phase.ADDING`, `Phase.REMOVING` and `Phase._missing_` (only those histories' payloads hold
  them), and the empty `Move.sources` of a plan that worker made;
  tests/unit/test_legacy_progress.py.
- `STALLS`: stall reports to the parent and the AirStalled attribute. Site: machinery/progress.py
  `stalls_published`.
- `WRITE_OFF`: a peer removed while down is written off. Site: workflows/remove_peer.py.
- `CATCH_UP`: before a peer that is down is removed, every survivor is brought to the longest
  prefix of its writes that any survivor holds (a migration off a node that is gone does it
  first too, told so by its input, `from_node_gone`). Site: workflows/remove_peer.py.
- `MOVES_RIDE_THROUGH`: an operation's move refused for a node that does not answer waits
  for it, then goes elsewhere or is set aside. Site: machinery/moves.py `_rides_through`.
- `INDIRECT_PROBES`: the autopilot asks the live nodes about a node the worker does not reach
  (activity `probe_views`), and repairs only a node no view reaches; without its marker a run
  goes on with the worker's view alone until it continues as new. Asked first thing in `run`,
  before any local activity. Sites: workflows/autopilot.py `run` (its one line) and
  `_worker_view`; activities/operations.py `probe_nodes`.

The dated histories that retire with each (the markers they hold, read from the files):
tests/histories/2026-11-26 holds none, 2026-11-27 `STALLS` only, 2026-12-01 `LEAN` and
`STALLS`, 2026-12-07 the autopilot's histories recorded before `INDIRECT_PROBES`; the undated
ones, recorded by the current build, hold every patch their steps reach. So retiring `LEAN`
retires 2026-11-26 and 2026-11-27 (and any of 2026-12-01 that reaches its sites without its
marker), `STALLS` retires 2026-11-26 (and the histories of the two later folders that reach a
stall without its marker), `WRITE_OFF`, `CATCH_UP` and `MOVES_RIDE_THROUGH`, newer than the
first three dated folders, retire those of them that reach their sites, and `INDIRECT_PROBES`
retires the autopilot histories of 2026-12-01 and 2026-12-07.

A patch is asked where the workflow resumes from a regular activity or a child, never right
after a local activity: a workflow task can end with a local activity's marker (when the
activity outlasts the task's heartbeat), and on replay a patch asked right after it is answered
"not patched" before its marker is reached (seen: a repair's migration failing replay after a
worker restart with "patch marker encountered ... but there is no corresponding change command").
"""

from __future__ import annotations

from temporalio import workflow

LEAN = "lean-workflows"
STALLS = "publish-stalls"
WRITE_OFF = "write-off-dead-peer"
CATCH_UP = "catch-up-dead-origin"
MOVES_RIDE_THROUGH = "moves-ride-through"
INDIRECT_PROBES = "indirect-probes"


def unversioned_start() -> bool:
    """Whether the unversioned worker started this workflow: then it runs as that worker ran
    it."""
    return not workflow.patched(LEAN)
