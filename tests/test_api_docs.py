"""The Python API page's examples run as written (docs/api.md): the fast test runs the ones
without Ray, the slow one the whole page in order, sweep and front included."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.DOTALL)


def _run(blocks: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "api_page"}
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), namespace)  # the page's own examples
    return namespace


def test_the_page_has_examples_of_every_function() -> None:
    text = "\n".join(examples())
    for function in ("rnnprune.prune(", "rnnprune.train(", "rnnprune.sweep(", "rnnprune.front("):
        assert function in text


def test_the_prune_and_train_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = _run(examples()[:2], tmp_path, monkeypatch)
    assert (tmp_path / "runs" / "api-trial" / "metrics.json").is_file()
    assert namespace["report"]["nonzero_params_pool"] > 0  # type: ignore[index]


@pytest.mark.slow
def test_the_whole_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(examples(), tmp_path, monkeypatch)
    assert (tmp_path / "runs" / "api-sweep" / "spec.yaml").is_file()
