"""The baseline bench/migrate.py measures the worker's sandbox against: `worker.py` with the
workflows and pydantic imported afresh for each run, only a few modules passed through (as the
earlier worker did).

Run: `python -m bench.reimport_worker` with the flags of `worker.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import worker
from stack.processes import WorkerProcess

REIMPORTING_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "contracts", "runtime", "activities", "protos", "google.protobuf"
    )
)


class ReimportingWorkerProcess(WorkerProcess):
    """A `WorkerProcess` running this module: the same flags, the baseline runner."""

    def command(self) -> list[str]:
        python, _, _, *flags = super().command()  # python -m worker FLAGS
        return [python, "-m", "bench.reimport_worker", *flags]


if __name__ == "__main__":
    worker.main(workflow_runner=REIMPORTING_RUNNER)
