"""Lattice pruning: the meet-irreducibility test against brute force, the spec's toy cases
(§5), sparsity targets, every switchable reading, and a tiny end-to-end trial."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rnnprune.config import validate_config
from rnnprune.errors import ConfigError
from rnnprune.models import RecurrentNet
from rnnprune.pruning import registry
from rnnprune.pruning.base import PrunableWeight
from rnnprune.pruning.lattice import (
    LatticeParams,
    betweenness_centrality,
    eigenvector_centrality,
    meet_irreducible,
    pagerank_centrality,
)
from rnnprune.training.runner import run_trial

LATTICE = registry.get("lattice")


def _context(extents: list[set[int]], sources: int) -> np.ndarray:
    """Boolean sources x targets matrix whose columns are the given extents."""
    incidence = np.zeros((sources, len(extents)), dtype=bool)
    for target, extent in enumerate(extents):
        incidence[sorted(extent), target] = True
    return incidence


def _brute_force_mi(incidence: np.ndarray) -> list[bool]:
    """Enumerate the lattice of extents (closed under intersection, all sources on top) and
    call a target meet-irreducible iff its extent has exactly one upper cover."""
    sources, targets = incidence.shape
    extents = [sum(1 << i for i in range(sources) if incidence[i, j]) for j in range(targets)]
    family = {(1 << sources) - 1, *extents}
    while True:
        grown = family | {a & b for a in family for b in family}
        if grown == family:
            break
        family = grown
    verdicts = []
    for extent in extents:
        above = [e for e in family if e != extent and e & extent == extent]
        covers = [e for e in above if not any(o != e and o & e == o for o in above)]
        verdicts.append(len(covers) == 1)
    return verdicts


def test_meet_irreducible_agrees_with_brute_force_enumeration() -> None:
    rng = np.random.default_rng(2025)
    checked = top_elements = 0
    for _ in range(2500):
        sources, targets = rng.integers(1, 8, size=2)
        incidence = rng.random((sources, targets)) < rng.uniform(0.15, 0.9)
        if rng.random() < 0.2:  # plant a full column: the top element
            incidence[:, rng.integers(targets)] = True
        fast = meet_irreducible(incidence)
        assert fast.dtype == bool and fast.shape == (targets,)
        assert fast.tolist() == _brute_force_mi(incidence), incidence.astype(int)
        assert not fast[incidence.all(0)].any()  # the top element is never meet-irreducible
        checked += 1
        top_elements += int(incidence.all(0).any())
    assert checked >= 2000 and top_elements > 300


def test_meet_irreducible_takes_tensors_and_batches() -> None:
    rng = np.random.default_rng(1)
    batch = rng.random((5, 7, 6)) < 0.5
    stacked = meet_irreducible(torch.from_numpy(batch))
    assert isinstance(stacked, torch.Tensor) and stacked.dtype == torch.bool
    assert [s.tolist() for s in stacked] == [meet_irreducible(b).tolist() for b in batch]


def test_spec_toy_contexts() -> None:
    # Target 2 is the meet of targets 0 and 1.
    assert meet_irreducible(_context([{0, 1, 2}, {0, 1, 3}, {0, 1}, {2, 3}], 4)).tolist() == [
        True,
        True,
        False,
        True,
    ]
    # A chain: the full column is the top element.
    assert meet_irreducible(_context([{0, 1, 2}, {0, 1}, {0}], 3)).tolist() == [False, True, True]
    # A cycle of pairs: nothing is the meet of others.
    assert meet_irreducible(_context([{0, 3}, {0, 1}, {1, 2}, {2, 3}], 4)).all()
    # Full support (continuous adjacency): every extent is the top, nothing is meet-irreducible.
    assert not meet_irreducible(np.ones((6, 6), dtype=bool)).any()


def test_duplicate_extents_share_a_verdict_unless_reduced() -> None:
    incidence = _context([{0, 1}, {0, 1}, {1, 2}], 3)
    assert meet_irreducible(incidence).tolist() == [True, True, True]
    assert meet_irreducible(incidence, duplicates="lowest_index").tolist() == [True, False, True]


def _lstm_weight(blocks: list[list[list[float]]], name: str = "rnn.weight_hh_l0") -> PrunableWeight:
    weight = torch.tensor([row for block in blocks for row in block])
    return PrunableWeight(
        name, 0, "hh", ("i", "f", "g", "o"), weight, torch.ones_like(weight, dtype=torch.bool)
    )


def test_spec_pytorch_layout_case() -> None:
    """Spec §5.3: rows are targets, columns sources; L2 over gates, tau = 0.25."""
    gate_i = [[0.9, 0.1, 0.0], [0.8, 0.7, 0.0], [0.0, 0.2, 0.6]]
    gate_f = [[0.0, 0.0, 0.05], [0.0, 0.0, 0.0], [0.3, 0.0, 0.0]]
    zeros = [[0.0] * 3] * 3
    weight = _lstm_weight([gate_i, gate_f, zeros, zeros])
    params = LatticeParams(threshold="absolute", tau=0.25, rho=0.0)
    result = LATTICE([weight], 0.5, params, torch.Generator())
    expected_block = torch.tensor([[0, 0, 0], [1, 1, 0], [1, 0, 1]], dtype=torch.bool)
    assert torch.equal(result.masks[weight.name], expected_block.repeat(4, 1))
    assert result.diagnostics["layer0.meet_irreducible"] == 2.0
    assert result.diagnostics["layer0.kept"] == 2.0
    assert result.diagnostics["layer0.threshold"] == 0.25
    assert result.diagnostics["sparsity"] == pytest.approx(20 / 36)
    assert 1 - result.masks[weight.name].float().mean().item() == pytest.approx(20 / 36)


def _model(cell: str, hidden: int = 24, layers: int = 1, seed: int = 0) -> RecurrentNet:
    torch.manual_seed(seed)
    return RecurrentNet(cell, 28, hidden, layers, 10)  # type: ignore[arg-type]


def _pool_sparsity(weights: list[PrunableWeight], masks: dict[str, torch.Tensor]) -> float:
    pruned = sum(int((~masks[w.name]).sum()) for w in weights)
    return pruned / sum(w.numel for w in weights)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("scope", [("hh",), ("ih", "hh")])
def test_binary_mode_reaches_the_target_within_one_point(cell: str, scope: tuple[str, ...]) -> None:
    model = _model(cell, hidden=32, layers=2)
    weights = model.prunable_weights(scope)  # type: ignore[arg-type]
    # With ih in the pool, layer 0's input weights stay, so the targets must leave room for that.
    targets = (0.3, 0.5, 0.8, 0.9, 0.95, 0.98) if scope == ("hh",) else (0.2, 0.3, 0.5, 0.6)
    for target in targets:
        result = LATTICE(weights, target, LatticeParams(), torch.Generator())
        reached = _pool_sparsity(weights, result.masks)
        assert abs(reached - target) <= 0.01, (target, reached)
        assert result.diagnostics["sparsity"] == pytest.approx(reached)
        for layer in (0, 1):
            assert result.diagnostics[f"layer{layer}.meet_irreducible"] <= 32


def test_nested_events_keep_reaching_the_target() -> None:
    """Iterative and gradual schedules call the method again from the masks it left."""
    model = _model("lstm", hidden=32)
    for target in (0.3, 0.6, 0.85, 0.95):
        weights = model.prunable_weights(("hh",))
        before = {w.name: w.mask.clone() for w in weights}
        result = LATTICE(weights, target, LatticeParams(), torch.Generator())
        for name, mask in result.masks.items():
            assert not (mask & ~before[name]).any()  # nested: nothing regrows
        assert abs(_pool_sparsity(weights, result.masks) - target) <= 0.01
        model.set_masks(result.masks)


def test_continuous_full_support_has_no_meet_irreducible_neuron() -> None:
    weights = _model("lstm", hidden=40).prunable_weights(("hh",))
    for rho in (0.0, 0.05, 0.2):
        result = LATTICE(weights, 0.5, LatticeParams(mode="continuous", rho=rho), torch.Generator())
        assert result.diagnostics["layer0.meet_irreducible"] == 0.0
        assert result.diagnostics["layer0.adjacency_density"] == 1.0
        kept_rows = result.masks["rnn.weight_hh_l0"].reshape(4, 40, 40).any(-1).any(0)
        assert int(kept_rows.sum()) == math.ceil(rho * 40 - 1e-9) == result.diagnostics["layer0.kept"]
        # The reading fixes the sparsity (1 - kept/H), whatever the target said.
        assert result.diagnostics["sparsity"] == pytest.approx(1 - math.ceil(rho * 40 - 1e-9) / 40)


def test_spec_degeneracies_of_the_cyclic_readings() -> None:
    """Spec §1.3: on a dense graph at q = 0.5 the reachability order is one strongly connected
    component (every column is the top), and two unrolled steps already reach everything."""
    weights = _model("lstm", hidden=32).prunable_weights(("hh",))
    one_step = LATTICE(weights, 0.5, LatticeParams(), torch.Generator()).diagnostics
    assert one_step["layer0.meet_irreducible"] == 32.0
    for params in (LatticeParams(order="reachability"), LatticeParams(unroll_steps=2)):
        result = LATTICE(weights, 0.5, params.model_copy(update={"quantile": 0.5}), torch.Generator())
        assert result.diagnostics["layer0.meet_irreducible"] == 0.0
        assert result.diagnostics["layer0.kept"] == math.ceil(0.05 * 32)


def test_centralities_match_networkx() -> None:
    networkx = pytest.importorskip("networkx")
    rng = np.random.default_rng(3)
    adjacency = (rng.random((12, 12)) < 0.3) * rng.random((12, 12))
    np.fill_diagonal(adjacency, 0.0)
    graph = networkx.from_numpy_array(adjacency, create_using=networkx.DiGraph)
    tensor = torch.from_numpy(adjacency)[None]
    pagerank = networkx.pagerank(graph, alpha=0.85, tol=1e-12)
    assert pagerank_centrality(tensor)[0].tolist() == pytest.approx(
        [pagerank[i] for i in range(12)], abs=1e-8
    )
    between = networkx.betweenness_centrality(graph, weight=None, normalized=True)
    assert betweenness_centrality(tensor)[0].tolist() == pytest.approx([between[i] for i in range(12)])
    undirected = networkx.from_numpy_array(adjacency + adjacency.T)
    eigen = networkx.eigenvector_centrality_numpy(undirected, weight="weight")
    ours = eigenvector_centrality(tensor)[0]
    assert ours.tolist() == pytest.approx([abs(eigen[i]) for i in range(12)], abs=1e-6)


@pytest.mark.parametrize(
    "update",
    [
        {"aggregation": "max"},
        {"aggregation": "mean"},
        {"aggregation": "gatewise"},
        {"threshold": "row_quantile"},
        {"threshold": "mean"},
        {"threshold": "absolute", "tau": 0.2},
        {"mode": "continuous", "normalization": "row", "epsilon": 0.3},
        {"order": "reachability"},
        {"unroll_steps": 3},
        {"lattice": "macneille"},
        {"lattice": "downset"},
        {"duplicates": "lowest_index"},
        {"centrality": "eigenvector"},
        {"centrality": "pagerank"},
        {"centrality": "betweenness"},
        {"keep_rule": "intersect_median"},
        {"keep_rule": "score", "score_keep": 0.25},
        {"remove": "neuron", "quantile": 0.98},
        {"bottom_up": False},
        {"extra_nodes": ("input", "readout")},
        {"context": "global"},
    ],
)
def test_every_reading_gives_nested_masks_and_layer_diagnostics(update: dict[str, Any]) -> None:
    model = _model("gru", hidden=16, layers=2)
    weights = model.prunable_weights(("ih", "hh", "readout"))
    params = LatticeParams.model_validate({**LatticeParams().model_dump(), **update})
    result = LATTICE(weights, 0.4, params, torch.Generator())
    assert set(result.masks) == {w.name for w in weights}
    for w in weights:
        assert result.masks[w.name].shape == w.weight.shape and result.masks[w.name].dtype == torch.bool
    for layer in (0, 1):
        assert 0 <= result.diagnostics[f"layer{layer}.meet_irreducible"] <= 16
        assert 0 <= result.diagnostics[f"layer{layer}.kept"] <= 16
        assert 0 <= result.diagnostics[f"layer{layer}.adjacency_density"] <= 1
    assert result.diagnostics["sparsity"] == pytest.approx(_pool_sparsity(weights, result.masks))
    untouched = {"rnn.weight_ih_l0", "readout.weight"} - (
        {"rnn.weight_ih_l0", "readout.weight"} if params.extra_nodes else set()
    )
    assert all(result.masks[name].all() for name in untouched)
    if not params.bottom_up:
        assert result.masks["rnn.weight_ih_l1"].all()


def test_specific_readings_do_what_they_say() -> None:
    weights = _model("lstm", hidden=16).prunable_weights(("hh",))
    fixed = LatticeParams(quantile=0.5)
    downset = LATTICE(weights, 0.9, fixed.model_copy(update={"lattice": "downset"}), torch.Generator())
    assert downset.diagnostics["layer0.meet_irreducible"] == 16.0
    assert downset.diagnostics["sparsity"] == pytest.approx(0.5)  # a fixed quantile fixes the sparsity
    # Gate-wise contexts give each gate block its own edges.
    gatewise = LATTICE(weights, 0.5, LatticeParams(aggregation="gatewise"), torch.Generator())
    blocks = gatewise.masks["rnn.weight_hh_l0"].reshape(4, 16, 16)
    assert not torch.equal(blocks[0], blocks[1])
    # Whole-neuron removal also clears the outgoing columns of non-kept neurons.
    neuron = LATTICE(weights, 0.5, LatticeParams(quantile=0.99, remove="neuron"), torch.Generator())
    mask = neuron.masks["rnn.weight_hh_l0"]
    dropped = ~mask.reshape(4, 16, 16).any(-1).any(0)
    assert dropped.any() and not mask[:, dropped].any()


def test_multilayer_context_masks_the_incoming_blocks_of_non_kept_neurons() -> None:
    weights = _model("lstm", hidden=48, layers=2).prunable_weights(("ih", "hh"))
    fixed = LatticeParams(quantile=0.95)
    lattice = LATTICE(weights, 0.6, fixed.model_copy(update={"rho": 0.0}), torch.Generator())
    everyone = LATTICE(weights, 0.6, fixed.model_copy(update={"rho": 1.0}), torch.Generator())
    assert lattice.masks["rnn.weight_ih_l0"].all()  # raw inputs are not neurons of the graph
    assert lattice.diagnostics["layer1.kept"] < 48 == everyone.diagnostics["layer1.kept"]

    def rows(masks: dict[str, torch.Tensor]) -> torch.Tensor:  # (neuron, gate * (ih | hh) sources)
        blocks = [masks[f"rnn.weight_{kind}_l1"].reshape(4, 48, 48).transpose(0, 1) for kind in ("ih", "hh")]
        return torch.cat(blocks, dim=-1).reshape(48, -1)

    # A neuron keeps its incoming adjacency edges in both blocks, or loses them in both; some
    # non-kept neurons had edges to lose.
    kept, full = rows(lattice.masks), rows(everyone.masks)
    same = (kept == full).all(-1)
    empty = ~kept.any(-1)
    assert (same | empty).all() and (~same).any()
    assert int((~empty).sum()) <= lattice.diagnostics["layer1.kept"]


def test_params_are_validated_with_their_field_path(trial_dict: dict[str, Any]) -> None:
    trial_dict["pruning"] |= {"method": "lattice", "params": {"threshold": "absolute"}}
    with pytest.raises(ConfigError, match="needs tau"):
        validate_config(trial_dict)
    trial_dict["pruning"]["params"] = {"centrality": "closeness"}
    with pytest.raises(ConfigError, match=r"pruning\.params\.centrality"):
        validate_config(trial_dict)


def test_end_to_end_gradual_trial(trial_dict: dict[str, Any], tmp_path: Path) -> None:
    """Gradual pruning: many events, each from the masks the previous one left (the first asks
    for 0 and must prune nothing)."""
    trial_dict["model"]["hidden_size"] = 32
    trial_dict["pruning"] |= {"method": "lattice", "scope": ["hh"], "target_sparsity": 0.8}
    metrics = run_trial(validate_config(trial_dict), tmp_path / "trial").metrics
    assert abs(metrics["sparsity"] - 0.8) <= 0.01  # measured from the weights by the core
    assert metrics["prune.layer0.neurons"] == 32.0
    assert 0 <= metrics["prune.layer0.meet_irreducible"] <= metrics["prune.layer0.kept"] <= 32
    assert 0 < metrics["prune.layer0.adjacency_density"] <= 1
    assert metrics["per_tensor"]["rnn.weight_ih_l0"]["sparsity"] == 0.0
    first_epoch = metrics["history"][0]
    assert 0 < first_epoch["sparsity"] < 0.8  # the ramp, not a collapse at the first event


def test_a_met_target_prunes_nothing() -> None:
    weights = _model("lstm", hidden=16).prunable_weights(("hh",))
    result = LATTICE(weights, 0.0, LatticeParams(), torch.Generator())
    assert all(mask.all() for mask in result.masks.values())
    assert result.diagnostics["skipped"] == 1.0 and result.diagnostics["sparsity"] == 0.0
    assert result.diagnostics["layer0.meet_irreducible"] == 0.0  # q = 0: every extent is the top
