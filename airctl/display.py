"""What airctl shows on a terminal: rich tables and live progress bars; plain lines elsewhere
(a pipe, a log file), and JSON with --json."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import TracebackType
from typing import Self, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table


def on_terminal(stream: TextIO) -> bool:
    return stream.isatty()


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A table on stdout, for a terminal."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


class Bars:
    """Live progress bars on a terminal (stderr); on anything else, a line per change of a
    bar's description, so a log shows each phase once."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self.out = out
        self.live = on_terminal(out)
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=Console(file=out),
            transient=False,
        )
        self._said: dict[TaskID, str] = {}

    def __enter__(self) -> Self:
        if self.live:
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.live:
            self._progress.stop()

    def add(self, description: str) -> TaskID:
        task = self._progress.add_task(description, total=None, detail="")
        return task

    def update(
        self,
        task: TaskID,
        description: str,
        *,
        done: float | None = None,
        total: float | None = None,
        detail: str = "",
    ) -> None:
        """Move a bar: `done` of `total` (None: not known yet, a spinner)."""
        self._progress.update(
            task, description=description, completed=done or 0, total=total, detail=detail
        )
        if not self.live and self._said.get(task) != description:
            self._said[task] = description
            self.out.write(f"{description} {detail}".rstrip() + "\n")
            self.out.flush()

    def remove(self, task: TaskID) -> None:
        self._progress.remove_task(task)
        self._said.pop(task, None)
