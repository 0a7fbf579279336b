"""Folders swapped in all together or not at all (artifacts.swap_in, manifests.replace_trees):
a rename refused part-way puts back the folders already swapped. Renames on one file system
do not fail on demand, so the refusal is injected into Path.replace."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.adapters.artifacts import staged_dir
from pipelines.adapters.manifests import read_tree, replace_trees


def tree(root: Path) -> dict[str, str]:
    """Every entry below ``root``, hidden stages included, with file contents."""
    return {
        str(p.relative_to(root)): p.read_text() if p.is_file() else "/"
        for p in sorted(root.rglob("*"))
    }


def refuse(monkeypatch: pytest.MonkeyPatch, when: Callable[[Path, Path], bool]) -> None:
    original = Path.replace

    def replace(self: Path, target: Path) -> Path:
        if when(self, Path(target)):
            raise OSError(errno.EBUSY, "Device or resource busy", str(self))
        return original(self, target)

    monkeypatch.setattr(Path, "replace", replace)


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    for folder in ("rendered/staging", "rendered/production", "controllers"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "old.yaml").write_text(f"{folder}: old\n")
    return tmp_path


def new_trees(root: Path) -> dict[Path, dict[str, str]]:
    return {
        root / folder: {"new.yaml": f"{folder}: new\n"}
        for folder in ("rendered/staging", "rendered/production", "controllers")
    }


def test_every_folder_is_replaced_and_nothing_is_left_beside_them(manifests: Path) -> None:
    replace_trees(new_trees(manifests))
    assert read_tree(manifests / "controllers") == {"new.yaml": "controllers: new\n"}
    assert tree(manifests) == {
        "controllers": "/",
        "controllers/new.yaml": "controllers: new\n",
        "rendered": "/",
        "rendered/production": "/",
        "rendered/production/new.yaml": "rendered/production: new\n",
        "rendered/staging": "/",
        "rendered/staging/new.yaml": "rendered/staging: new\n",
    }


@pytest.mark.parametrize(
    "step",
    ["moving the old folder aside", "moving the new folder in"],
)
def test_a_rename_refused_on_the_last_folder_puts_back_the_others(
    manifests: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    before = tree(manifests)
    if step == "moving the old folder aside":
        refuse(monkeypatch, lambda src, _: src == manifests / "controllers")
    else:
        refuse(monkeypatch, lambda src, _: src.name.startswith(".controllers.new."))
    with pytest.raises(OSError, match="busy"):
        replace_trees(new_trees(manifests))
    assert tree(manifests) == before  # the old trees, and no stage or old copy left


def test_a_staged_folder_that_cannot_be_swapped_in_leaves_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    final = tmp_path / "gate"
    final.mkdir()
    (final / "blessing.json").write_text("old\n")
    refuse(monkeypatch, lambda src, _: src.name.startswith(".gate.new."))
    with pytest.raises(OSError, match="busy"), staged_dir(final) as out:
        (out / "blessing.json").write_text("new\n")
    assert tree(tmp_path) == {"gate": "/", "gate/blessing.json": "old\n"}


def test_a_stage_that_fails_leaves_nothing_beside_the_old_folder(tmp_path: Path) -> None:
    def stage() -> None:
        with staged_dir(tmp_path / "gate") as out:
            (out / "half.json").write_text("{")
            raise RuntimeError("the stage failed")

    with pytest.raises(RuntimeError):
        stage()
    assert tree(tmp_path) == {}
