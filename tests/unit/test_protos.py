"""The committed generated code must match what scripts/gen_protos.py produces."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "libs" / "common" / "src" / "accord" / "api"


def _tree(path: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(path)): p
        for p in path.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    out = tmp_path / "api"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(out)], check=True
    )
    fresh, committed = _tree(out), _tree(COMMITTED)
    assert sorted(fresh) == sorted(committed), "generated file set differs: run `make protos`"
    stale = [name for name in fresh if not filecmp.cmp(fresh[name], committed[name], shallow=False)]
    assert stale == [], f"stale generated code (run `make protos`): {stale}"


def test_generated_modules_import_under_accord_api() -> None:
    from accord.api.presence.v1 import presence_pb2_grpc
    from accord.api.sync.v1 import sync_pb2, sync_pb2_grpc

    assert sync_pb2.DESCRIPTOR.package == "accord.sync.v1"
    assert hasattr(sync_pb2_grpc, "SyncStub")
    assert hasattr(presence_pb2_grpc, "PresenceServicer")


def test_check_mode_passes_on_committed_code_and_names_a_stale_file(tmp_path: Path) -> None:
    script = [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"]
    clean = subprocess.run(script, capture_output=True, text=True, check=False)
    assert clean.returncode == 0, clean.stderr
    copy = tmp_path / "api"
    subprocess.run([*script[:2], "--out", str(copy)], check=True)
    (copy / "sync" / "v1" / "sync_pb2.py").write_text("# edited by hand\n")
    (copy / "sync" / "v1" / "extra.py").write_text("")
    stale = subprocess.run(
        [*script, "--out", str(copy)], capture_output=True, text=True, check=False
    )
    assert stale.returncode == 1
    assert "sync/v1/sync_pb2.py" in stale.stderr and "sync/v1/extra.py" in stale.stderr
    assert (copy / "sync" / "v1" / "extra.py").exists()  # --check writes nothing
