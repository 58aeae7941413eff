"""Compile Accord's hot pure-Python modules with mypyc, in place, next to their sources.

``make install-run`` runs this after the editable installs (``python scripts/compile.py``);
``python scripts/compile.py --clean`` removes the compiled modules again (``make`` does that
when ``ACCORD_PURE_PYTHON=1``). The ``.py`` files stay the source of truth: an extension
module ``rules.cpython-311-x86_64-linux-gnu.so`` beside ``rules.py`` is what Python imports
first, and deleting it brings the source back. Which modules are compiled is listed once,
in each package's pyproject.toml (``[tool.accord.compiled] modules``).

``--into SITE`` compiles the same sources for a non-editable install (docker/Dockerfile): the
extension modules go into that site-packages instead (mypy must see the installed packages, e.g.
through a .pth file naming SITE in the compiling interpreter's own site-packages). The wheels of
``make dist`` stay pure Python (their pyproject.toml excludes ``*.so``).
"""

from __future__ import annotations

import argparse
import os
import shutil
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


def build(
    packages: list[Path],
    *,
    opt_level: str,
    verbose: bool,
    into: Path | None = None,
) -> list[Path]:
    # Imported here: `--clean` needs neither mypy nor setuptools.
    from mypyc.build import mypycify
    from setuptools import Distribution  # type: ignore[import-untyped]

    groups: list[tuple[list[str], str | None]] = []
    paths: list[str] = []
    homes: dict[str, Path] = {}  # the first part of a built file's path -> the src/ it goes to
    for package in packages:
        modules = compiled_modules(package)
        if not modules:
            continue
        files = [str(source_of(package, module).relative_to(ROOT)) for module in modules]
        paths += files
        # One shared library per package, at the top of its src/ (accord_sync__mypyc.*.so):
        # mypyc derives each module's __file__ from where that library sits.
        library = modules[0].rsplit(".", 1)[0].replace(".", "_")  # accord_common, accord_sync
        groups.append((files, library))
        homes[f"{library}__mypyc"] = package / "src"
        for module in modules:
            homes[module] = package / "src"
    if not paths:
        return []
    options = ["--config-file", "pyproject.toml", "--cache-dir"]
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="accord-mypyc-") as scratch:
        os.chdir(ROOT)  # mypy reads [tool.mypy] (mypy_path, namespace packages) from here
        extensions = mypycify(
            [*options, f"{scratch}/cache", *paths],
            opt_level=opt_level,
            separate=groups,
            target_dir=f"{scratch}/c",
            verbose=verbose,
        )
        distribution = Distribution({"name": "accord-compiled", "ext_modules": extensions})
        command = distribution.get_command_obj("build_ext")
        command.build_temp = f"{scratch}/temp"
        command.build_lib = f"{scratch}/lib"
        command.parallel = os.cpu_count() or 1
        distribution.run_command("build_ext")
        # Each extension module beside its source (the libraries at the top of src/).
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        for extension in extensions:
            name: str = extension.name
            built = Path(scratch, "lib", *name.split(".")).with_name(
                name.rsplit(".", 1)[-1] + suffix
            )
            target = (into or homes[name]) / built.relative_to(Path(scratch, "lib"))
            partial = target.with_name(target.name + ".partial")
            shutil.copyfile(built, partial)
            partial.chmod(0o755)
            os.replace(partial, target)  # a new file: running processes keep the old one
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules")
    parser.add_argument("--opt-level", default="3", help="the C compiler's -O level")
    parser.add_argument(
        "--list-sources", action="store_true", help="print the sources compiled (for make)"
    )
    parser.add_argument(
        "--into",
        type=Path,
        help="put the compiled modules into this site-packages (a non-editable install, as in "
        "docker/Dockerfile) instead of beside the sources",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    packages = [ROOT / p for p in PACKAGES]
    if args.list_sources:
        for package in packages:
            for module in compiled_modules(package):
                print(source_of(package, module).relative_to(ROOT))
        return 0
    removed = 0 if args.into else clean(packages)
    if args.clean or pure_requested():
        why = "ACCORD_PURE_PYTHON is set: " if not args.clean else ""
        print(f"compile: {why}removed {removed} compiled module(s); Accord runs pure Python")
        return 0
    started = time.monotonic()
    built = build(
        packages,
        opt_level=args.opt_level,
        verbose=args.verbose,
        into=args.into,
    )
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    print(
        f"compile: {len(built)} extension module(s) ({suffix}) in "
        f"{time.monotonic() - started:.0f} s: "
        + ", ".join(p.name.removesuffix(suffix) for p in built)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
