"""Regenerate the Python code for protos/ into libs/common/src/accord/api.

Usage: python scripts/gen_protos.py [--out DIR | --check]

``--check`` regenerates into a scratch directory and exits 1, naming the files, when the
committed code differs (the pre-commit hook and CI use it); nothing is written.

The proto packages are ``accord.<svc>.v1``; their generated modules live under
``accord.api.<svc>.v1`` so that they never collide with the hand-written
``accord.<svc>`` packages. protoc writes imports after the proto paths, so
they are rewritten here.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
DEFAULT_OUT = ROOT / "libs" / "common" / "src" / "accord" / "api"
IMPORT = re.compile(r"^from accord\.(\w+)\.v1 import", re.MULTILINE)


def generate(out: Path) -> None:
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        rc = protoc.main(
            [
                "protoc",
                f"-I{PROTOS}",
                f"-I{well_known}",
                f"--python_out={tmp}",
                f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}",
                *sources,
            ]
        )
        if rc != 0:
            sys.exit(f"protoc failed with exit code {rc}")
        if out.exists():
            shutil.rmtree(out)
        generated = Path(tmp) / "accord"
        for path in sorted(generated.rglob("*.py*")):
            text = IMPORT.sub(r"from accord.api.\1.v1 import", path.read_text())
            target = out / path.relative_to(generated)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        for directory in [out, *(p for p in out.rglob("*") if p.is_dir())]:
            (directory / "__init__.py").touch()
        (out / "py.typed").touch()


def stale(committed: Path) -> list[str]:
    """The files under ``committed`` that differ from freshly generated code (or are missing)."""

    def tree(path: Path) -> dict[str, Path]:
        files = (p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        return {p.relative_to(path).as_posix(): p for p in files}

    with tempfile.TemporaryDirectory() as tmp:
        fresh_dir = Path(tmp) / "api"
        generate(fresh_dir)
        fresh, old = tree(fresh_dir), tree(committed) if committed.is_dir() else {}
        return sorted(
            name
            for name in fresh.keys() | old.keys()
            if name not in fresh
            or name not in old
            or not filecmp.cmp(fresh[name], old[name], shallow=False)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the code in --out is stale; write nothing"
    )
    args = parser.parse_args()
    if not args.check:
        generate(args.out)
        return
    names = stale(args.out)
    if names:
        sys.exit(f"stale generated code in {args.out} (run `make protos`): {', '.join(names)}")


if __name__ == "__main__":
    main()
