"""The checked-in generated code matches what the pinned generator makes from proto/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_current(tmp_path: Path) -> None:
    """Regenerating from proto/ gives byte-identical files to the ones checked in."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = {p.name: p.read_bytes() for p in (tmp_path / "policy_engine" / "v1").glob("*_pb2*")}
    checked_in = {p.name: p.read_bytes() for p in (ROOT / "policy_engine" / "v1").glob("*_pb2*")}
    assert fresh, "the generator produced nothing"
    assert sorted(fresh) == sorted(checked_in), "generated file set differs: run scripts/gen_protos.py"
    stale = [name for name in fresh if fresh[name] != checked_in[name]]
    assert not stale, f"stale generated code {stale}: run scripts/gen_protos.py"
