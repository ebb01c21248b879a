"""Regenerate the Python stubs from the .proto sources: `python -m protos.generate`.

The committed stubs must equal this command's output (tests/unit/test_protos.py checks).
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = sorted(p.relative_to(ROOT) for p in (ROOT / "protos").glob("*.proto"))
# mypy-protobuf's plugin types the service stubs, so a node call is checked like any call
MYPY_GRPC = Path(sysconfig.get_path("scripts")) / "protoc-gen-mypy_grpc"


def generate(out_dir: Path) -> None:
    """Write `*_pb2.py`, `*_pb2.pyi`, `*_pb2_grpc.py` and `*_pb2_grpc.pyi` for every proto
    under `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--plugin=protoc-gen-mypy_grpc={MYPY_GRPC}",
        f"--mypy_grpc_out={out_dir}",
        *(str(p) for p in PROTOS),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
