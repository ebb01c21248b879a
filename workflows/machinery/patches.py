"""Every `workflow.patched` id, and the gate for workflows of the unversioned worker, in one
place: what each guards, every site that asks it, and when it can retire.

With Worker Versioning (client/versions.py) a pinned workflow never meets another build, so
these matter for what moves between builds: the auto-upgrading operations, and workflows the
unversioned worker started (they move to the current build). A workflow started before a patch
existed replays without it, command for command; one started after records its marker. A patch
retires (`workflow.deprecate_patch`, then deletion) once no workflow without its marker runs;
the dated histories in tests/histories/ recorded before it retire with it (a folder's date
says which patches its worker had: 2026-11-26 none of these).

- `LEAN`: workflows of the earlier worker (no marker) run as it ran them (workflows/legacy/).
  Sites: `earlier_worker_started` below; its callers workflows/migration.py `run`,
  workflows/drain.py `run` and machinery/steps.py `Runner.lean` (the options it picks in
  `Runner.run`, `Steps.describe` and the boundary step's; bench/migrate.py's `InProcess`
  overrides it); the package workflows/legacy/, and what current code takes from it: the
  base classes `RelaysChildStalls` of workflows/migration.py and `AnswersEarlierDrains` of
  workflows/drain.py (tests/ ask current drains for `drain_progress` too: they move to
  `moves_progress`), `with_children` in airctl/progress.py `snapshot`; contracts/models.py
  `Phase.ADDING` and `Phase.REMOVING` (only the retired histories' payloads hold them).
- `STALLS`: stall reports to the parent and the AirStalled attribute. Site: machinery/progress.py
  `stalls_published`.
- `WRITE_OFF`: a peer removed while down is written off. Site: workflows/remove_peer.py.
- `CATCH_UP`: before a peer that is down is removed, every survivor is brought to the longest
  prefix of its writes that any survivor holds (a migration off a node that is gone does it
  first too, told so by its input, `from_node_gone`). Site: workflows/remove_peer.py.
- `MOVES_RIDE_THROUGH`: an operation's move refused for a node that does not answer waits
  for it, then goes elsewhere or is set aside. Site: machinery/moves.py `_rides_through`.

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


def earlier_worker_started() -> bool:
    """Whether the earlier worker started this workflow: then it runs as that worker ran it."""
    return not workflow.patched(LEAN)
