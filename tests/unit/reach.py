"""Proof that a property's generator reaches the cases it was written for, not a hope.

A property names, in each example, the cases that example reached (`reached`); `reaching` runs
the property and then fails unless every case it lists came up at least once. Each case must be
common enough (a few percent of the examples or more) that its runs never miss it by chance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar

from hypothesis import event

# Hypothesis's choices vary from run to run more than a draw's odds say: a case that one run in
# fifty misses, two runs in a row miss one time in thousands. The second run comes only then.
RUNS = 2

_seen: ContextVar[Counter[str] | None] = ContextVar("seen", default=None)


def reached(*cases: str) -> None:
    """This example reached `cases` (also shown by pytest --hypothesis-show-statistics)."""
    seen = _seen.get()
    for case in cases:
        event(case)
        if seen is not None:
            seen[case] += 1


def reaching(*cases: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Run the property (a @given test), then fail unless its examples reached every one of
    `cases` (in RUNS runs at most), and named no other (a misspelt case would prove nothing)."""

    def wrap(prop: Callable[[], None]) -> Callable[[], None]:
        def test() -> None:
            seen: Counter[str] = Counter()
            token = _seen.set(seen)
            try:
                for _ in range(RUNS):
                    prop()
                    if all(seen[c] for c in cases):
                        break
            finally:
                _seen.reset(token)
            assert set(seen) <= set(cases), f"cases not listed in @reaching: {set(seen) - {*cases}}"
            missing = [c for c in cases if not seen[c]]
            assert not missing, f"the generator never reached {missing} (it reached {dict(seen)})"

        test.__name__ = test.__qualname__ = prop.__name__
        test.__doc__, test.__module__ = prop.__doc__, prop.__module__
        return test

    return wrap
