"""Spectral gaps of bipartite layer graphs against exact spectra (expander.md §5.1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from rnnprune import graphs
from rnnprune.graphs import graph_metrics, layer_graphs, spectral_gaps, top_singular_values
from rnnprune.models.recurrent import RecurrentNet


def cycle_biadjacency(half: int) -> np.ndarray:
    """The even cycle C_{2·half}: right node i joins left nodes i and i+1 (mod half)."""
    return np.eye(half) + np.roll(np.eye(half), 1, axis=1)


def test_complete_bipartite_has_root_mn_and_no_second_eigenvalue() -> None:
    gaps = spectral_gaps(np.ones((5, 3)))
    assert gaps["mu0"] == pytest.approx(math.sqrt(15))
    assert gaps["mu_hat"] == pytest.approx(0.0, abs=1e-12)
    assert (gaps["d_left"], gaps["d_right"]) == (5.0, 3.0)
    assert gaps["delta_s"] == pytest.approx(2 * math.sqrt(math.sqrt(15) - 1))
    assert gaps["delta_r"] == pytest.approx(2 + math.sqrt(2))
    # A complete bipartite graph is the best expander: normalised-Laplacian λ1 = 1.
    assert gaps["lambda1"] == pytest.approx(1.0)
    assert (gaps["cheeger_lower"], gaps["cheeger_upper"]) == pytest.approx((0.5, math.sqrt(2)))


@pytest.mark.parametrize("half", [2, 3, 4, 6, 9])
def test_even_cycle_spectrum(half: int) -> None:
    """C_{2n} has eigenvalues 2cos(πk/n); the top two magnitudes are 2 and 2cos(π/n)."""
    gaps = spectral_gaps(cycle_biadjacency(half))
    second = 2 * math.cos(math.pi / half)
    assert gaps["mu0"] == pytest.approx(2.0)
    assert gaps["mu_hat"] == pytest.approx(second if half > 2 else 0.0, abs=1e-12)
    assert gaps["delta_r"] == pytest.approx(2.0 - gaps["mu_hat"])
    # 2-regular: normalised adjacency is A/2, so λ1 = 1 - cos(π/n).
    assert gaps["lambda1"] == pytest.approx(1 - gaps["mu_hat"] / 2)


def test_path_p4_against_the_spec_table() -> None:
    gaps = spectral_gaps(np.array([[1, 0], [1, 1]]))
    golden = (1 + math.sqrt(5)) / 2
    assert (gaps["mu0"], gaps["mu_hat"]) == pytest.approx((golden, golden - 1))
    assert (gaps["d_left"], gaps["d_right"]) == (1.5, 1.5)
    assert gaps["delta_s"] == pytest.approx(0.954, abs=1e-3)
    assert gaps["delta_r"] == pytest.approx(0.796, abs=1e-3)


@pytest.mark.parametrize("blocks", [2, 3])
def test_disjoint_union_repeats_the_perron_root(blocks: int) -> None:
    gaps = spectral_gaps(np.kron(np.eye(blocks), np.ones((2, 2))))
    assert gaps["mu_hat"] == gaps["mu0"] == pytest.approx(2.0)
    assert gaps["delta_r"] == pytest.approx(0.0, abs=1e-12)
    # A split graph has Cheeger constant 0, so λ1 must be 0.
    assert gaps["lambda1"] == pytest.approx(0.0, abs=1e-12)


def test_disjoint_union_of_unequal_parts_takes_the_second_component() -> None:
    biadjacency = sp.block_diag([np.ones((3, 3)), cycle_biadjacency(4)]).toarray()
    gaps = spectral_gaps(biadjacency)
    assert (gaps["mu0"], gaps["mu_hat"]) == pytest.approx((3.0, 2.0))


def random_lift(right: int, left: int, copies: int, seed: int) -> np.ndarray:
    """A random `copies`-lift of K_{left,right}: a random permutation matrix in every block, so
    each right node has degree `left` and each left node degree `right` (simple, biregular)."""
    rng = np.random.default_rng(seed)
    eye = np.eye(copies)
    return np.block([[eye[rng.permutation(copies)] for _ in range(left)] for _ in range(right)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_biregular_perron_root_and_ramanujan_bound(seed: int) -> None:
    """(c, d)-biregular: μ0 = √(cd) exactly; Δ_R is the Feng–Li bound minus μ̂, and a random
    biregular graph of this size sits close to the bound (within the Alon–Boppana slack)."""
    gaps = spectral_gaps(random_lift(right=9, left=6, copies=8, seed=seed))
    assert (gaps["d_right"], gaps["d_left"]) == (6.0, 9.0)
    assert gaps["mu0"] == pytest.approx(math.sqrt(54))
    bound = math.sqrt(5) + math.sqrt(8)
    assert gaps["delta_r"] == pytest.approx(bound - gaps["mu_hat"])
    assert abs(gaps["mu_hat"] - bound) < 0.25 * bound


def test_adjacency_eigenvalues_are_plus_minus_singular_values() -> None:
    rng = np.random.default_rng(0)
    biadjacency = (rng.random((7, 4)) < 0.6).astype(float)
    adjacency = np.block([[np.zeros((4, 4)), biadjacency.T], [biadjacency, np.zeros((7, 7))]])
    singular = np.linalg.svd(biadjacency, compute_uv=False)
    expected = np.sort(np.concatenate([singular, -singular, np.zeros(11 - 2 * len(singular))]))
    np.testing.assert_allclose(np.linalg.eigvalsh(adjacency), expected, atol=1e-10)
    gaps = spectral_gaps(biadjacency)
    assert (gaps["mu0"], gaps["mu_hat"]) == pytest.approx(tuple(singular[:2]))


def test_isolated_nodes_change_neither_spectrum_nor_degrees() -> None:
    core = cycle_biadjacency(3)
    padded = np.zeros((5, 6))
    padded[1:4, 2:5] = core
    assert spectral_gaps(padded) == pytest.approx({**spectral_gaps(core), "density": 6 / 30}, abs=1e-12)


def test_weighted_variants_on_a_hand_case() -> None:
    """K_{2,2} with weights 3 on one matching, 1 on the other: B = [[3,1],[1,3]], σ = 4, 2;
    strengths 4 per node; a zero weight off the mask is no edge, a masked-out weight is ignored."""
    mask = np.array([[1, 1, 0], [1, 1, 0]])
    weights = np.array([[-3.0, 1.0, 7.0], [1.0, 3.0, 7.0]])
    gaps = spectral_gaps(mask, weights)
    assert (gaps["mu0_w"], gaps["mu_hat_w"]) == pytest.approx((4.0, 2.0))
    assert (gaps["s_left"], gaps["s_right"]) == pytest.approx((4.0, 4.0))
    assert gaps["gap_w"] == pytest.approx(2.0)
    assert gaps["delta_s_w"] == pytest.approx(2 * math.sqrt(3) - 2)
    assert gaps["delta_r_w"] == pytest.approx(2 * math.sqrt(3) - 2)
    # Strengths below 1 clamp to a zero margin instead of a NaN.
    small = spectral_gaps(mask, weights / 10)
    assert small["delta_r_w"] == pytest.approx(-0.2)
    assert small["delta_s_w"] == pytest.approx(-0.2)


def test_empty_graph_has_no_expansion() -> None:
    gaps = spectral_gaps(np.zeros((4, 3)))
    assert gaps["delta_r"] == gaps["delta_s"] == float("-inf")
    assert gaps["density"] == 0.0


@pytest.mark.parametrize("density", [0.05, 0.3])
def test_lanczos_path_agrees_with_dense_svd(density: float, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    mask = (rng.random((300, 120)) < density).astype(float)
    dense = np.linalg.svd(mask, compute_uv=False)[:2]
    monkeypatch.setattr(graphs, "DENSE_MAX_SIDE", 8)
    np.testing.assert_allclose(top_singular_values(sp.csr_array(mask)), dense, rtol=1e-8)
    lanczos = spectral_gaps(mask)
    monkeypatch.setattr(graphs, "DENSE_MAX_SIDE", 10_000)
    assert lanczos == pytest.approx(spectral_gaps(mask), rel=1e-8)


def test_rank_one_graphs_keep_an_exact_zero_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """σ2 = 0 is where squaring (the Gram route) loses accuracy: B itself must be decomposed."""
    complete = np.ones((300, 40))
    assert spectral_gaps(complete)["mu_hat"] == pytest.approx(0.0, abs=1e-8 * math.sqrt(12_000))
    monkeypatch.setattr(graphs, "DENSE_MAX_SIDE", 8)
    lanczos = spectral_gaps(complete)
    assert lanczos["mu0"] == pytest.approx(math.sqrt(12_000))
    assert lanczos["mu_hat"] == pytest.approx(0.0, abs=1e-8 * math.sqrt(12_000))


def test_random_mask_crossing_is_where_the_spec_measured_it() -> None:
    """A buggy Δ_R crosses at 50% density; a random 128×128 mask stays positive at 20% and is
    negative at 5% (expander.md §5.2: +1.05 and −0.45)."""
    rng = np.random.default_rng(0)
    assert spectral_gaps(rng.random((128, 128)) < 0.2)["delta_r"] > 0.5
    assert spectral_gaps(rng.random((128, 128)) < 0.05)["delta_r"] < 0


def test_layer_graphs_of_an_lstm_use_gate_units_or_merged_units() -> None:
    torch.manual_seed(0)
    model = RecurrentNet("lstm", input_size=5, hidden_size=6, num_layers=2, num_classes=3)
    model.rnn.weight_hh_l0_mask[:, :3] = False
    shapes = {g.name: tuple(g.counts.shape) for g in layer_graphs(model)}
    assert shapes == {
        "G_ih_l0": (24, 5),
        "G_hh_l0": (24, 6),
        "G_cat_l0": (24, 11),
        "G_ih_l1": (24, 6),
        "G_hh_l1": (24, 6),
        "G_cat_l1": (24, 12),
    }
    merged = {g.name: g for g in layer_graphs(model, merge_gates=True)}
    assert tuple(merged["G_hh_l0"].counts.shape) == (6, 6)
    # Four gates fold onto each hidden unit: multiplicity 4 on kept edges, 0 on pruned ones.
    assert set(merged["G_hh_l0"].counts.unique().tolist()) == {0.0, 4.0}
    metrics = graph_metrics(model)
    assert metrics["graph.G_hh_l0.density"] == pytest.approx(0.5)
    assert metrics["graph.G_hh_l0.d_left"] == pytest.approx(24.0)  # the 3 isolated columns excluded
    assert metrics["graph.G_ih_l0.delta_r_w"] == pytest.approx(
        spectral_gaps(torch.ones(24, 5), model.rnn.weight_ih_l0)["delta_r_w"]
    )
