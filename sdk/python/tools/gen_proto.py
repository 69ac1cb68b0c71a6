"""Regenerates the gRPC stubs kept in ``sentinel_sdk/_proto`` from the repository's proto.

    python tools/gen_proto.py            # rewrite the stubs in the package
    python tools/gen_proto.py OUT_DIR    # write them under OUT_DIR instead (used by the tests)

grpcio-tools writes ``from sentinel.v1 import sentinel_pb2``, an import that only works when
the generated tree is on ``sys.path`` as a top-level package. The import is rewritten to
point into ``sentinel_sdk._proto`` so the stubs live inside the SDK while the descriptor keeps
its canonical file name (``sentinel/v1/sentinel.proto``), the one the server reflects.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SDK_ROOT = HERE.parent
PROTO_ROOT = SDK_ROOT.parent.parent / "proto"
PROTO_FILE = "sentinel/v1/sentinel.proto"
PACKAGE_DIR = SDK_ROOT / "sentinel_sdk" / "_proto"
GENERATED = (
    "sentinel/v1/sentinel_pb2.py",
    "sentinel/v1/sentinel_pb2.pyi",
    "sentinel/v1/sentinel_pb2_grpc.py",
)


def generate(out_dir: Path) -> list[Path]:
    """Runs protoc (from grpcio-tools) into ``out_dir``; returns the generated files."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        PROTO_FILE,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO_ROOT / PROTO_FILE}")
    files = [out_dir / name for name in GENERATED]
    for path in files:
        text = path.read_text(encoding="utf-8")
        text = re.sub(
            r"^from sentinel\.v1 import ",
            "from sentinel_sdk._proto.sentinel.v1 import ",
            text,
            flags=re.MULTILINE,
        )
        path.write_text(text, encoding="utf-8")
    return files


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE_DIR
    for f in generate(target):
        print(f)
