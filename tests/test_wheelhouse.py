"""`./run wheels`: which packages a box without an index gets, and which it is trusted to have (no network here:
the resolution is a hand-made pip report; the download itself is exercised by hand, docs/airgap.md)."""

from __future__ import annotations

import zipfile

import pytest
from packaging.requirements import Requirement

from tools.wheelhouse import (
    PYPROJECT,
    Item,
    parse_args,
    parse_have,
    plan,
    platform_tags,
    project_requirements,
    torch_version,
    usable_have,
    write_torch_stub,
)


def item(name: str, version: str, *requires: str) -> Item:
    return Item(name, version, [Requirement(r) for r in requires])


# A resolved graph in the shape of pip's report: what the project needs, torch's own and CUDA dependencies, an
# extra asked of a package the box has (markdown-it-py[linkify]) and a dependency for old Pythons only.
ITEMS = {i.name: i for i in [
    item("textual", "8.0", "markdown-it-py[linkify]>=2.1", "rich>=13"),
    item("rich", "14.0", "markdown-it-py>=2.2", "pygments"),
    item("markdown-it-py", "4.0", "mdurl", 'linkify-it-py>=1; extra == "linkify"'),
    item("mdurl", "0.1"), item("pygments", "2.19"), item("linkify-it-py", "2.0"),
    item("datasets", "5.2", "pandas", "numpy", "fsspec", 'tomli; python_version < "3.11"'),
    item("pandas", "3.0", "numpy"), item("numpy", "2.4"), item("tomli", "2.0"),
    item("peft", "0.21", "torch>=2", "transformers"),
    item("transformers", "5.17.0", "numpy", "huggingface-hub>=1"), item("huggingface-hub", "1.2", "fsspec"),
    item("torch", "2.11.0+nlirgstub", "filelock", "fsspec", "jinja2"),
    item("fsspec", "2025.1"), item("filelock", "3.0"), item("jinja2", "3.1"),
    item("nvidia-cublas-cu13", "13.0"), item("setuptools", "84.0"),
]}
ROOTS = [Requirement(r) for r in ("torch>=2.11", "transformers>=5.17", "peft", "datasets", "textual", "rich")]


def test_the_full_set_carries_everything_but_torch_its_dependencies_and_cuda() -> None:
    full = plan(ITEMS, ROOTS, {}, "3.12")
    assert set(full.carry) == {"textual", "rich", "markdown-it-py", "mdurl", "pygments", "linkify-it-py", "datasets",
                               "pandas", "numpy", "peft", "transformers", "huggingface-hub", "setuptools"}
    assert {"torch", "fsspec", "filelock", "jinja2"} <= set(full.left_out)
    assert full.carry["transformers"] == "5.17.0"


def test_minimal_leaves_out_what_the_box_has_and_what_came_with_it() -> None:
    have = parse_have("rich transformers==5.17.0 peft torch==2.11.0+cu130")
    box = plan(ITEMS, ROOTS, have, "3.12")
    # rich brought markdown-it-py, mdurl and pygments; transformers brought numpy and the hub. The linkify extra
    # textual asks of the box's markdown-it-py is not something the box has: it travels.
    assert set(box.carry) == {"textual", "linkify-it-py", "datasets", "pandas", "setuptools"}
    assert {"rich", "markdown-it-py", "mdurl", "pygments", "numpy", "huggingface-hub", "transformers", "peft",
            "torch"} <= set(box.left_out)


def test_a_dependency_for_old_pythons_travels_only_for_them() -> None:
    assert "tomli" in plan(ITEMS, ROOTS, {}, "3.10").carry
    assert "tomli" not in plan(ITEMS, ROOTS, {}, "3.12").carry


def test_have_reads_pip_freeze_and_drops_what_is_too_old_for_the_project(capsys) -> None:
    have = parse_have("# a comment\nrich==14.0\nmylib @ file:///x/mylib.whl\n-e git+https://x\ntransformers==4.40\n")
    assert have == {"rich": "14.0", "mylib": None, "transformers": "4.40"}
    usable = usable_have(have, ROOTS)
    assert "transformers" not in usable and "rich" in usable
    assert "transformers 4.40 does not satisfy transformers>=5.17" in capsys.readouterr().err
    assert "transformers" in plan(ITEMS, ROOTS, usable, "3.12").carry


def test_torch_placeholder_claims_the_box_version_and_only_torchs_own_dependencies(tmp_path) -> None:
    assert torch_version({"torch": "2.11.0+cu130"}, ROOTS) == "2.11.0"
    assert torch_version({}, project_requirements()) == "2.11"  # pyproject's minimum
    pin = write_torch_stub(tmp_path, "2.11.0")
    assert pin == "torch==2.11.0+nlirgstub"
    (wheel,) = tmp_path.glob("*.whl")
    meta = zipfile.ZipFile(wheel).read("torch-2.11.0+nlirgstub.dist-info/METADATA").decode()
    assert "Requires-Dist: filelock" in meta and "nvidia" not in meta and "triton" not in meta


def test_arguments_and_the_project_roots() -> None:
    args = parse_args(["wh", "--minimal", "--have", "rich peft"])
    assert args.python.split() == ["3.10", "3.11", "3.12"] and args.minimal
    with pytest.raises(SystemExit):
        parse_args(["wh", "--have", "rich"])  # --have without --minimal would silently do nothing
    names = {r.name for r in project_requirements(PYPROJECT)}
    assert {"torch", "transformers", "textual", "pytest", "deepspeed", "gguf"} <= names  # base, dev, deepspeed, export
    assert "wandb" not in names and "wandb" in {r.name for r in project_requirements(PYPROJECT, ["wandb"])}
    assert "manylinux2014_x86_64" in platform_tags("manylinux_2_28_x86_64")
