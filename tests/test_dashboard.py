"""The Pareto dashboard: its data, the self-contained page, and the page in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import headless_chromium

from rnnprune.dashboard import dashboard_data, render_html, write_dashboard
from rnnprune.pareto import RunRecord

REPO = Path(__file__).resolve().parents[1]
METHODS = ("global_magnitude", "random", "lattice")
TARGETS = (0.5, 0.8, 0.9, 0.95)


def quickstart_runs(seeds: int = 1, measured: int = 0) -> list[RunRecord]:
    """Runs shaped like the quickstart's: three methods x four targets, made-up accuracies; the
    first `measured` runs with made-up measured speed-ups too."""
    runs = []
    for m, method in enumerate(METHODS):
        for target in TARGETS:
            for seed in range(seeds):
                accuracy = 0.98 - (0.05 + 0.1 * m) * target**4 - 0.004 * seed
                run_id = f"{method[:4]}{int(target * 100)}s{seed}"
                runs.append(
                    RunRecord(
                        run_id=run_id,
                        experiment_id="3",
                        run_name=run_id,
                        params={
                            "pruning.method": method,
                            "pruning.target_sparsity": str(target),
                            "model.hidden_size": "128",
                            "seed": str(seed),
                            "trial_hash": run_id,
                        },
                        metrics={
                            "test_accuracy": accuracy,
                            "sparsity": target + 0.001 * seed,
                            "nonzero_params": 70_000 * (1 - target) + 1290,
                            **(
                                {"speedup_b1": 1 + m * target, "speedup_b64": 1 + 2 * m * target}
                                if len(runs) < measured
                                else {}
                            ),
                        },
                        tags={"method": method, "task": "seq_mnist"},
                    )
                )
    return runs


def link(run: RunRecord) -> str:
    return f"http://127.0.0.1:5000/#/experiments/{run.experiment_id}/runs/{run.run_id}"


def test_dashboard_data_has_one_point_per_run_fronts_and_spread() -> None:
    runs = quickstart_runs(seeds=2)
    data = dashboard_data(runs, "test_accuracy", link, "test")
    assert len(data["trials"]) == len(runs) and len(data["configs"]) == len(runs) // 2
    assert {c["seeds"] for c in data["configs"]} == {2}
    assert all(c["y_std"] > 0 for c in data["configs"])
    assert set(data["fronts"]["sparsity"]) == {"all", *METHODS}
    assert set(data["fronts"]["nonzero_params"]) == {"all", *METHODS}
    assert data["trials"][0]["url"].endswith(f"/runs/{data['trials'][0]['run_id']}")
    assert "pruning.target_sparsity" in data["trials"][0]["params"]
    assert data["hypervolume"]["all"] >= max(v for k, v in data["hypervolume"].items() if k != "all")


def test_the_speed_view_holds_the_runs_that_measured_their_speed() -> None:
    runs = quickstart_runs(seeds=2, measured=8)  # four configurations of two seeds
    data = dashboard_data(runs, "test_accuracy", link, "test")
    with_speed = [t for t in data["trials"] if t["x"]["speedup_b1"] is not None]
    assert len(with_speed) == 8
    assert all(t["metrics"]["speedup_b1"] == t["x"]["speedup_b1"] for t in with_speed)
    configs = [c for c in data["configs"] if c["x"]["speedup_b1"] is not None]
    assert len(configs) == 4 and configs[0]["x"]["speedup_b64"] is not None
    assert data["x_labels"]["speedup_b1"] == "measured speed-up at batch 1"
    # Front over quality and speed: only the runs that measured it, speed-up higher-is-better.
    front = data["fronts"]["speedup_b1"]["all"]
    assert {x for x, _ in front} <= {c["x"]["speedup_b1"] for c in configs}
    assert set(data["fronts"]["sparsity"]) == {"all", *METHODS}  # the other views are whole


def test_page_is_self_contained(tmp_path: Path) -> None:
    files = write_dashboard(quickstart_runs(), "test_accuracy", link, "quickstart </script>", tmp_path)
    assert [f.name for f in files] == ["pareto.html", "pareto.png", "pareto.json"]
    page = files[0].read_text()
    assert not re.search(r"""(src|href)=["']https?://""", page)  # nothing fetched from the network
    assert "</script>" not in page.split("const DATA = ", 1)[1].split(";\n", 1)[0]  # escaped in data
    embedded = page.split("const DATA = ", 1)[1].split(";\nconst SVG_NS", 1)[0]
    assert len(json.loads(embedded)["trials"]) == 12
    assert files[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_dashboard_in_headless_chromium(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    runs = quickstart_runs()
    page = render_html(
        dashboard_data(runs, "test_accuracy", link, "synthetic runs, quickstart-sized (browser test)"),
        tmp_path / "p.html",
    )
    driver = headless_chromium()
    try:
        driver.get(page.as_uri())
        dots = driver.find_elements(By.CSS_SELECTOR, "circle.trial")
        assert sorted(d.get_attribute("data-run-id") for d in dots) == sorted(r.run_id for r in runs)
        front = driver.find_element(By.CSS_SELECTOR, "path.front-all")
        assert front.get_attribute("d").count("L") >= 1
        assert len(driver.find_elements(By.CSS_SELECTOR, "path.front-line")) == 1 + len(METHODS)
        link_of_first = dots[0].find_element(By.XPATH, "..").get_dom_attribute("href")
        assert link_of_first.endswith(f"/runs/{dots[0].get_attribute('data-run-id')}")
        # Hovering shows the run's parameters.
        driver.execute_script(
            "arguments[0].dispatchEvent(new MouseEvent('mousemove', {bubbles: true}))", dots[0]
        )
        tooltip = driver.find_element(By.ID, "tooltip")
        assert tooltip.is_displayed() and "pruning.target_sparsity" in tooltip.text
        screenshot = tmp_path / "pareto_dashboard.png"
        driver.execute_script("document.getElementById('tooltip').style.display = 'none'")
        driver.save_screenshot(str(screenshot))
        assert screenshot.stat().st_size > 10_000
        if os.environ.get("RNNPRUNE_UPDATE_SCREENSHOT"):  # refresh the README's image on purpose only
            shutil.copy(screenshot, REPO / "docs" / "images" / "pareto_dashboard.png")
        # The toggle redraws against non-zero parameters on a log axis, with its own front.
        driver.find_element(By.ID, "toggle-params").click()
        assert "log scale" in driver.find_element(By.ID, "chart").text
        assert len(driver.find_elements(By.CSS_SELECTOR, "circle.trial")) == len(runs)
        assert driver.find_element(By.CSS_SELECTOR, "path.front-all").get_attribute("d")
        # No run measured its speed: the speed view says so instead of drawing.
        driver.find_element(By.ID, "x-speedup_b1").click()
        assert not driver.find_elements(By.CSS_SELECTOR, "circle.trial")
        message = driver.find_element(By.ID, "chart").text
        assert "no finished trial reports measured speed-up at batch 1" in message
    finally:
        driver.quit()


@pytest.mark.slow
def test_accuracy_against_measured_speed_in_headless_chromium(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    runs = quickstart_runs(measured=6)
    page = render_html(dashboard_data(runs, "test_accuracy", link, "speed view"), tmp_path / "p.html")
    driver = headless_chromium()
    try:
        driver.get(page.as_uri())
        driver.find_element(By.ID, "x-speedup_b64").click()
        dots = driver.find_elements(By.CSS_SELECTOR, "circle.trial")
        assert sorted(d.get_attribute("data-run-id") for d in dots) == sorted(r.run_id for r in runs[:6])
        assert "measured speed-up at batch 64" in driver.find_element(By.ID, "chart").text
        assert driver.find_element(By.CSS_SELECTOR, "path.front-all").get_attribute("d").count("L") >= 1
    finally:
        driver.quit()
