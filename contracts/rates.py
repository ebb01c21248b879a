"""A transfer rate limit as an operator writes it (MB/s, 0 for none, or `auto`), and as the
progress of a transfer shows it."""

from __future__ import annotations

import argparse

AUTO = "auto"


def rate_limit(text: str) -> float | str:
    """`auto`, or MB/s (0: no limit); for argparse's `type=`."""
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        mbps = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a rate: MB/s (0 for no limit) or {AUTO}"
        ) from None
    if mbps < 0 or mbps != mbps:
        raise argparse.ArgumentTypeError(f"{text!r}: a rate cannot be negative")
    return mbps


def limit_text(bytes_per_s: float, auto: bool) -> str:
    """`auto: 38 MB/s`, `auto: no limit` (lifted for now), `limit 32 MB/s`; "" for none."""
    mbps = bytes_per_s / 1e6
    rate = f"{mbps:,.{0 if mbps >= 10 else 1}f} MB/s" if bytes_per_s else "no limit"
    if auto:
        return f"{AUTO}: {rate}"
    return f"limit {rate}" if bytes_per_s else ""
