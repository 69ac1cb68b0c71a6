"""The stubs kept in the package are exactly what grpcio-tools makes of the proto today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SDK = Path(__file__).resolve().parents[1]


def test_kept_stubs_match_the_proto(tmp_path):
    spec = importlib.util.spec_from_file_location("gen_proto", SDK / "tools" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    fresh = gen.generate(tmp_path)
    for path in fresh:
        rel = path.relative_to(tmp_path)
        kept = SDK / "sentinel_sdk" / "_proto" / rel
        assert kept.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"{kept} is out of date: run `python tools/gen_proto.py` in sdk/python"
        )
