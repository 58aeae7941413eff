"""Compile Accord's hot pure-Python modules with mypyc, in place, next to their sources.

``make install-run`` runs this after the editable installs (``python scripts/compile.py``);
``python scripts/compile.py --clean`` removes the compiled modules again (``make`` does that
when ``ACCORD_PURE_PYTHON=1``). The ``.py`` files stay the source of truth: an extension
module ``rules.cpython-311-x86_64-linux-gnu.so`` beside ``rules.py`` is what Python imports
first, and deleting it brings the source back. Which modules are compiled is listed once,
in each package's pyproject.toml (``[tool.accord.compiled] modules``); the wheels' build hook
(``hatch_build.py`` of the same packages) reads the same list.
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The packages with compiled modules, in build order (sync and edge import common).
PACKAGES = ("libs/common", "services/sync", "services/edge")


def compiled_modules(package: Path) -> list[str]:
    """The dotted module names a package's pyproject.toml lists under [tool.accord.compiled]."""
    with (package / "pyproject.toml").open("rb") as file:
        config = tomllib.load(file)
    modules: list[str] = (
        config.get("tool", {}).get("accord", {}).get("compiled", {}).get("modules", [])
    )
    return modules


def pure_requested() -> bool:
    """ACCORD_PURE_PYTHON, read as accord.common.native reads it (that module need not import)."""
    value = os.environ.get("ACCORD_PURE_PYTHON", "").strip().lower()
    return value not in ("", "0", "false", "no")


def source_of(package: Path, module: str) -> Path:
    return package / "src" / Path(*module.split(".")).with_suffix(".py")


def artifacts(package: Path) -> list[Path]:
    """Every compiled file of a package's source tree (extension modules of any interpreter)."""
    src = package / "src"
    suffixes = (".so", ".pyd")
    return sorted(p for p in src.rglob("*") if p.suffix in suffixes and p.is_file())


def clean(packages: list[Path]) -> int:
    removed = 0
    for package in packages:
        for path in artifacts(package):
            path.unlink()
            removed += 1
    return removed


def build(packages: list[Path], *, opt_level: str, verbose: bool) -> None:
    # Imported here: `--clean` needs neither mypy nor setuptools.
    from mypyc.build import mypycify
    from setuptools import Distribution  # type: ignore[import-untyped]

    groups: list[tuple[list[str], str | None]] = []
    paths: list[str] = []
    package_dirs: dict[str, str] = {}
    for package in packages:
        modules = compiled_modules(package)
        if not modules:
            continue
        files = [str(source_of(package, module).relative_to(ROOT)) for module in modules]
        paths += files
        parent = modules[0].rsplit(".", 1)[0]  # accord.common, accord.sync, accord.edge
        # One shared library per package, inside the package: accord/sync/_mypyc__mypyc.*.so
        groups.append((files, f"{parent}._mypyc"))
        for module in modules:
            pkg = module.rsplit(".", 1)[0]
            package_dirs[pkg] = str(package / "src" / Path(*pkg.split(".")))
    if not paths:
        return
    with tempfile.TemporaryDirectory(prefix="accord-mypyc-") as scratch:
        os.chdir(ROOT)  # mypy reads [tool.mypy] (mypy_path, namespace packages) from here
        extensions = mypycify(
            [
                "--config-file",
                str(ROOT / "pyproject.toml"),
                "--cache-dir",
                f"{scratch}/cache",
                *paths,
            ],
            opt_level=opt_level,
            separate=groups,
            target_dir=f"{scratch}/c",
            verbose=verbose,
        )
        distribution = Distribution(
            {"name": "accord-compiled", "ext_modules": extensions, "package_dir": package_dirs}
        )
        command = distribution.get_command_obj("build_ext")
        command.inplace = True
        command.build_temp = f"{scratch}/temp"
        command.build_lib = f"{scratch}/lib"
        command.parallel = os.cpu_count() or 1
        distribution.run_command("build_ext")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules")
    parser.add_argument("--opt-level", default="3", help="the C compiler's -O level")
    parser.add_argument(
        "--list-sources", action="store_true", help="print the sources compiled (for make)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    packages = [ROOT / p for p in PACKAGES]
    if args.list_sources:
        for package in packages:
            for module in compiled_modules(package):
                print(source_of(package, module).relative_to(ROOT))
        return 0
    removed = clean(packages)
    if args.clean or pure_requested():
        why = "ACCORD_PURE_PYTHON is set: " if not args.clean else ""
        print(f"compile: {why}removed {removed} compiled module(s); Accord runs pure Python")
        return 0
    started = time.monotonic()
    build(packages, opt_level=args.opt_level, verbose=args.verbose)
    built = [p for package in packages for p in artifacts(package)]
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    print(
        f"compile: {len(built)} extension module(s) ({suffix}) in "
        f"{time.monotonic() - started:.0f} s: "
        + ", ".join(p.name.removesuffix(suffix) for p in built)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
