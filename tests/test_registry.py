"""Registries: built-in names load lazily, installed packages add names by entry point, a
`module:attribute` reference plugs in directly, and a name declared twice is an error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rnnprune.data.base import Task
from rnnprune.data.registry import registered_tasks
from rnnprune.registry import BUILT_IN, Registry, UnknownName

PLUGIN = '''
from rnnprune.data.adding import TASK as ADDING
from dataclasses import replace
TASK = replace(ADDING, name="plugged", description="A task from an installed package.")
'''


def _install(site: Path, distribution: str, module: str, entry_points: str) -> None:
    """A distribution as pip leaves it: its module and a .dist-info with entry_points.txt."""
    (site / f"{module}.py").write_text(PLUGIN)
    info = site / f"{distribution}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _tasks() -> Registry[Task]:
    return Registry("task", Task, {"adding": "rnnprune.data.adding:TASK"}, entry_point_group="rnnprune.tasks")


def test_an_installed_package_adds_a_task_by_entry_point(site: Path) -> None:
    already = _tasks().names()  # the environment's own plugins (make install adds the example's)
    _install(site, "keyword-tasks", "keyword_tasks", "[rnnprune.tasks]\nplugged = keyword_tasks:TASK\n")
    tasks = _tasks()
    assert tasks.names() == sorted([*already, "plugged"])
    assert tasks.lookup("plugged").description == "A task from an installed package."
    assert tasks.origin("plugged") == "entry point of keyword-tasks"
    assert tasks.origin("adding") == BUILT_IN


def test_a_name_declared_twice_is_an_error_naming_both(site: Path) -> None:
    _install(site, "first-pkg", "first_mod", "[rnnprune.tasks]\nplugged = first_mod:TASK\n")
    _install(site, "second-pkg", "second_mod", "[rnnprune.tasks]\nplugged = second_mod:TASK\n")
    with pytest.raises(UnknownName, match=r"'plugged' is declared twice: .*first-pkg.* and .*second-pkg"):
        _tasks().lookup("plugged")


def test_an_entry_point_may_not_shadow_a_built_in_name(site: Path) -> None:
    _install(site, "shadow-pkg", "shadow_mod", "[rnnprune.tasks]\nadding = shadow_mod:TASK\n")
    with pytest.raises(UnknownName, match=r"'adding' is declared twice: .*built-in.* and .*shadow-pkg"):
        _tasks().lookup("adding")


def test_a_broken_entry_point_names_its_import_error(site: Path) -> None:
    (site / "broken_mod.py").write_text("raise RuntimeError('needs a GPU driver')\n")
    info = site / "broken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[rnnprune.tasks]\nbroken = broken_mod:TASK\n")
    with pytest.raises(UnknownName, match=r"module 'broken_mod' does not import \(RuntimeError: needs a GPU"):
        _tasks().lookup("broken")


def test_built_in_names_load_only_when_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "rnnprune.data.language_model", raising=False)
    tasks = Registry("task", Task, {"word_lm": "rnnprune.data.language_model:TASK"})
    assert "word_lm" in tasks and tasks.names() == ["word_lm"]
    assert "rnnprune.data.language_model" not in sys.modules
    assert tasks.lookup("word_lm").name == "word_lm"
    assert "rnnprune.data.language_model" in sys.modules


def test_unknown_names_list_what_exists() -> None:
    with pytest.raises(UnknownName, match=r"unknown task 'nope'; registered: adding.*word_lm"):
        registered_tasks.lookup("nope")


def test_a_reference_is_found_but_not_listed_as_a_name() -> None:
    tasks = _tasks()
    assert "tests.plugin_tasks:TASK" in tasks
    assert tasks.lookup("tests.plugin_tasks:TASK").name == "detection_f1"
    assert "tests.plugin_tasks:TASK" not in tasks.names()
    assert "tests.plugin_tasks:NO_SUCH" not in tasks
