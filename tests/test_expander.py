"""The expander method: per-graph pruning, Δ diagnostics, and stop modes on a constructed model.

The constructed Elman RNN (H = 8) has a W_hh whose large weights form two diagonal 4×4 blocks
and whose small weights join them: magnitude pruning removes the joining edges first. Round 2
of the 0.8^k schedule (51, 41, 33 edges kept) leaves the two complete blocks and one bridge
between them, a graph that is nearly split (μ̂ close to μ0), so Δ_R < 0 there and not before.
W_ih's magnitudes fall with the circulant distance (j − i) mod 8, so its graph thins band by
band and crosses much later (round 6). An independent dense-SVD oracle checks each step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rnnprune.config import TrialConfig
from rnnprune.models.recurrent import RecurrentNet
from rnnprune.pruning import registry
from rnnprune.pruning.expander import ExpanderParams
from rnnprune.training.runner import run_trial

HIDDEN = 8
TARGETS = [1 - 0.8 ** (r + 1) for r in range(7)]  # the iterative schedule's per-round pool targets
EXPANDER = registry.get("expander")


def constructed_weights() -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.meshgrid(np.arange(HIDDEN), np.arange(HIDDEN), indexing="ij")
    tie_break = (rows * HIDDEN + cols) * 37 % 64 / 64  # 37 is odd: a permutation of 0..63
    same_block = rows // 4 == cols // 4
    weight_hh = np.where(same_block, 10.0, 1.0) + tie_break
    weight_ih = 10.0 - (cols - rows) % HIDDEN + tie_break / 10
    signs = np.where((rows + cols) % 2 == 0, 1.0, -1.0)  # magnitude, not sign, must decide
    return weight_ih * signs, weight_hh * signs


def constructed_model() -> RecurrentNet:
    model = RecurrentNet("rnn_tanh", input_size=HIDDEN, hidden_size=HIDDEN, num_layers=1, num_classes=2)
    weight_ih, weight_hh = constructed_weights()
    with torch.no_grad():
        model.rnn.weight_ih_l0.copy_(torch.from_numpy(weight_ih))
        model.rnn.weight_hh_l0.copy_(torch.from_numpy(weight_hh))
    return model


def oracle_delta_r(mask: np.ndarray) -> float:
    """Δ_R from first principles: dense SVD, degrees over non-isolated nodes."""
    singular = np.linalg.svd(mask, compute_uv=False)
    edges = mask.sum()
    d_left = edges / np.count_nonzero(mask.sum(axis=0))
    d_right = edges / np.count_nonzero(mask.sum(axis=1))
    return math.sqrt(d_left - 1) + math.sqrt(d_right - 1) - singular[1]


def oracle_delta_s(mask: np.ndarray) -> float:
    singular = np.linalg.svd(mask, compute_uv=False)
    return 2 * math.sqrt(singular[0] - 1) - singular[1]


def magnitude_mask(weight: np.ndarray, target: float) -> np.ndarray:
    kept = weight.size - round(target * weight.size)
    return np.abs(weight) >= np.sort(np.abs(weight).ravel())[::-1][kept - 1]


def first_crossing(weight: np.ndarray, oracle: Callable[[np.ndarray], float] = oracle_delta_r) -> int:
    return next(r for r, t in enumerate(TARGETS) if oracle(magnitude_mask(weight, t).astype(float)) < 0)


def run_rounds(model: RecurrentNet, params: ExpanderParams, scope: tuple[str, ...]) -> list[dict[str, float]]:
    """The iterative schedule without retraining: one call per round, masks nested by the core."""
    diagnostics = []
    for round_index, target in enumerate(TARGETS):
        result = EXPANDER(
            model.prunable_weights(scope),  # type: ignore[arg-type]
            target,
            params,
            torch.Generator().manual_seed(round_index),
        )
        model.set_masks(result.masks)
        diagnostics.append(result.diagnostics)
    return diagnostics


def kept_edges(model: RecurrentNet, kind: str) -> int:
    return int(getattr(model.rnn, f"weight_{kind}_l0_mask").sum())


def test_the_construction_crosses_where_designed() -> None:
    weight_ih, weight_hh = constructed_weights()
    assert first_crossing(weight_hh) == 2
    assert first_crossing(weight_ih) == 6


def test_stop_none_prunes_every_round_and_records_the_crossing() -> None:
    model = constructed_model()
    diagnostics = run_rounds(model, ExpanderParams(stop="none"), ("ih", "hh"))
    weight_hh = constructed_weights()[1]
    for round_index, (target, logged) in enumerate(zip(TARGETS, diagnostics, strict=True)):
        expected = oracle_delta_r(magnitude_mask(weight_hh, target))
        assert logged["G_hh_l0.delta_r"] == pytest.approx(expected, abs=1e-9), round_index
        assert logged["G_hh_l0.stopped"] == 0.0
    assert kept_edges(model, "hh") == 64 - round(TARGETS[-1] * 64)


def test_first_crossing_stops_the_whole_pool_at_the_round_before() -> None:
    model = constructed_model()
    diagnostics = run_rounds(model, ExpanderParams(stop="first_crossing"), ("ih", "hh"))
    crossing = first_crossing(constructed_weights()[1])
    edges_before = 64 - round(TARGETS[crossing - 1] * 64)
    # Both graphs stay at the round before G_hh's crossing, though G_ih alone would go on.
    assert kept_edges(model, "hh") == kept_edges(model, "ih") == edges_before
    assert [d["stopped_graphs"] for d in diagnostics] == [0, 0, 2, 2, 2, 2, 2]
    assert all(d["G_hh_l0.delta_r"] >= 0 for d in diagnostics)
    expected_mask = magnitude_mask(constructed_weights()[1], TARGETS[crossing - 1])
    np.testing.assert_array_equal(model.rnn.weight_hh_l0_mask.numpy(), expected_mask)


def test_ramanujan_mode_freezes_each_graph_at_its_own_crossing() -> None:
    model = constructed_model()
    diagnostics = run_rounds(model, ExpanderParams(stop="ramanujan"), ("ih", "hh"))
    weight_ih, weight_hh = constructed_weights()
    hh_before = first_crossing(weight_hh) - 1
    ih_before = first_crossing(weight_ih) - 1
    np.testing.assert_array_equal(
        model.rnn.weight_hh_l0_mask.numpy(), magnitude_mask(weight_hh, TARGETS[hh_before])
    )
    np.testing.assert_array_equal(
        model.rnn.weight_ih_l0_mask.numpy(), magnitude_mask(weight_ih, TARGETS[ih_before])
    )
    assert [d["G_hh_l0.stopped"] for d in diagnostics] == [0, 0, 1, 1, 1, 1, 1]
    assert [d["G_ih_l0.stopped"] for d in diagnostics] == [0, 0, 0, 0, 0, 0, 1]
    assert all(d[f"G_{k}_l0.delta_r"] >= 0 for d in diagnostics for k in ("ih", "hh"))


def test_delta_s_criterion_tests_its_own_margin() -> None:
    """On G_ih, Δ_S stays ≥ 0 through round 6 where Δ_R crosses: a Δ_S stop never fires there."""
    weight_ih = constructed_weights()[0]
    assert min(oracle_delta_s(magnitude_mask(weight_ih, t).astype(float)) for t in TARGETS) >= 0
    model = constructed_model()
    diagnostics = run_rounds(model, ExpanderParams(stop="ramanujan", criterion="delta_s"), ("ih",))
    assert kept_edges(model, "ih") == 64 - round(TARGETS[-1] * 64)
    assert all(d["G_ih_l0.stopped"] == 0 for d in diagnostics)


def test_a_stopped_graph_resumes_only_on_a_ramanujan_candidate() -> None:
    """No hidden state: each round re-tests a candidate pruned from the kept masks. Δ_S of G_hh is
    not monotone (−0.34 at 33 edges, −0.26 at 26, +0.12 at 21), so a Δ_S stop at round 2 holds
    through round 3 and resumes at round 4 with masks that are Ramanujan again."""
    model = constructed_model()
    diagnostics = run_rounds(model, ExpanderParams(stop="ramanujan", criterion="delta_s"), ("hh",))
    assert [d["G_hh_l0.stopped"] for d in diagnostics][:4] == [0, 0, 1, 1]
    assert diagnostics[4]["G_hh_l0.stopped"] == 0
    assert all(d["G_hh_l0.delta_s"] >= 0 for d in diagnostics)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("graph", ["separate", "cat"])
def test_random_selection_and_graph_options_reach_the_target_on_gated_cells(cell: str, graph: str) -> None:
    torch.manual_seed(0)
    model = RecurrentNet(cell, input_size=5, hidden_size=12, num_layers=2, num_classes=3)  # type: ignore[arg-type]
    params = ExpanderParams(stop="none", selection="random", graph=graph, merge_gates=True)
    weights = model.prunable_weights(("ih", "hh"))
    first = EXPANDER(weights, 0.5, params, torch.Generator().manual_seed(1))
    again = EXPANDER(weights, 0.5, params, torch.Generator().manual_seed(1))
    assert all(torch.equal(first.masks[n], again.masks[n]) for n in first.masks)  # seeded
    kept = sum(int(m.sum()) for m in first.masks.values())
    assert kept == pytest.approx(sum(w.numel for w in weights) / 2, abs=len(weights))
    prefix = "G_cat" if graph == "cat" else "G_hh"
    assert {f"{prefix}_l0.delta_r", f"{prefix}_l1.delta_r_w", f"{prefix}_l1.delta_s"} <= set(
        first.diagnostics
    )


def test_a_trial_logs_expander_diagnostics_and_graph_metrics(
    trial_dict: dict[str, Any], tmp_path: Path
) -> None:
    trial_dict["training"] = {**trial_dict["training"], "epochs": 1}
    trial_dict["pruning"] = {
        "method": "expander",
        "params": {"stop": "ramanujan"},
        "target_sparsity": 0.9,
        "schedule": {"kind": "iterative", "rounds": 3, "retrain_epochs": 1},
    }
    metrics = run_trial(TrialConfig.model_validate(trial_dict), tmp_path / "trial").metrics
    for key in (
        "prune.G_ih_l0.delta_r",
        "prune.G_hh_l0.stopped",
        "graph.G_cat_l0.delta_r",
        "graph.G_hh_l0.mu0",
    ):
        assert key in metrics
    assert len(metrics["history"]) == 3
    # Stopped graphs keep their masks, so the pool can fall short of the target, never beyond it.
    assert metrics["sparsity"] <= 0.9 + 1e-9
