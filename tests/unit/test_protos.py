"""The committed stubs are exactly what `python -m protos.generate` produces."""

from __future__ import annotations

from pathlib import Path

from protos.generate import ROOT, generate


def test_committed_stubs_match_the_generator(tmp_path: Path) -> None:
    generate(tmp_path)
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*_pb2*.py*"))
    assert generated, "the generator produced nothing"
    stale = [str(p) for p in generated if (ROOT / p).read_bytes() != (tmp_path / p).read_bytes()]
    assert stale == [], f"stale stubs {stale}: run `python -m protos.generate`"
