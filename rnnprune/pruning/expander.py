"""Expander (spectral-gap) pruning: prune each layer graph while it stays Ramanujan.

After Kalra et al. (arXiv:2403.11100) and Pal et al. (ICML 2022), as `expander.md` §2
reconstructs them. Each layer graph (G_ih and G_hh of a layer by default, or G_cat =
[W_ih | W_hh]) is pruned on its own to the round's target, by magnitude within the graph
(random as a control), and its Ramanujan margins Δ_S / Δ_R are recorded as diagnostics.
Run it under the iterative schedule: the schedule calls it once per round with the current
weights and masks, retrains in between, and keeps masks nested.

Stop modes:

- `none`: prune every round; the diagnostics still show where Δ crosses zero.
- `first_crossing`: the whole pool stops at the round before the first zero crossing: if
  any graph's candidate masks would have Δ < 0, every graph keeps its current masks.
- `ramanujan`: a graph whose candidate would have Δ < 0 keeps its current masks; the other
  graphs go on (Pal et al.'s "pruning individual layers while retaining their respective
  Ramanujan graph property").

Why no state across rounds: the decision is a pure function of (weights, current masks,
round target). A stopped graph is offered, next round, a candidate pruned from the same
masks to a higher target, i.e. with fewer edges, and Δ tends to fall as edges go, so it
stays stopped. The exception (retraining reshuffles magnitudes so that a sparser candidate
is Ramanujan again; Δ is not strictly monotone) still returns masks with Δ ≥ 0, which is
the property the modes protect; a latch could not be derived from the masks anyway (under `first_crossing`
all graphs stay in lock-step, stopped or not), so none is faked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from pydantic import Field

from rnnprune.graphs import merge_gate_rows, spectral_gaps
from rnnprune.pruning.base import MethodParams, PrunableWeight, PruningMethod, PruningResult
from rnnprune.pruning.selection import lowest_k_mask, masked_scores, prune_count


class ExpanderParams(MethodParams):
    graph: Literal["separate", "cat"] = Field(
        default="separate",
        description="separate: G_ih and G_hh pruned and tested on their own (the spec's primary "
        "choice); cat: [W_ih | W_hh] of a layer ranked jointly and tested as G_cat.",
    )
    selection: Literal["magnitude", "random"] = Field(
        default="magnitude", description="Which surviving edges a graph loses: smallest |w|, or random."
    )
    stop: Literal["none", "first_crossing", "ramanujan"] = Field(
        default="ramanujan",
        description="none; first_crossing: the pool stops at the round before any graph's Δ < 0; "
        "ramanujan: only graphs whose Δ would go negative stop.",
    )
    criterion: Literal["delta_r", "delta_s"] = Field(
        default="delta_r",
        description="Margin that defines a crossing: delta_r (Hoory's bipartite bound, "
        "the spec's default) or delta_s (2√(μ0−1) bound, blind to unbalanced sides).",
    )
    weighted: bool = Field(
        default=False, description="Test the weighted margin (on |W ⊙ M|) instead of the unweighted one."
    )
    merge_gates: bool = Field(
        default=False,
        description="Graph right nodes are the H hidden units (gate rows summed: a multigraph) "
        "instead of the gate pre-activation units.",
    )


def _graph_name(weight: PrunableWeight, joint: bool) -> str:
    if weight.kind == "readout":
        return "G_out"
    if weight.kind == "encoder":
        return f"G_{weight.name.split('.')[0]}"
    return f"G_cat_l{weight.layer}" if joint else f"G_{weight.kind}_l{weight.layer}"


def _graph_matrices(
    members: Sequence[PrunableWeight], masks: Sequence[torch.Tensor], merge_gates: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(edge multiplicities, |W| on them) of one graph, its members side by side (G_cat)."""
    counts, magnitudes = [], []
    for weight, mask in zip(members, masks, strict=True):
        count = mask.detach().to(torch.float64)
        magnitude = weight.weight.detach().abs().to(torch.float64) * count
        if merge_gates and weight.kind in ("ih", "hh"):
            count, magnitude = (merge_gate_rows(m, len(weight.gates)) for m in (count, magnitude))
        counts.append(count)
        magnitudes.append(magnitude)
    return torch.cat(counts, dim=1).cpu(), torch.cat(magnitudes, dim=1).cpu()


def _margins(
    members: Sequence[PrunableWeight], masks: Sequence[torch.Tensor], params: ExpanderParams
) -> dict[str, float]:
    counts, magnitudes = _graph_matrices(members, masks, params.merge_gates)
    return spectral_gaps(counts, magnitudes, cheeger=False)


def _candidate(
    members: Sequence[PrunableWeight], scores: Sequence[torch.Tensor], target_sparsity: float
) -> list[torch.Tensor]:
    """Prune the graph to the target, its members ranked jointly (one member: layerwise)."""
    flat = torch.cat([s.reshape(-1) for s in scores])
    keep = lowest_k_mask(flat, prune_count(flat.numel(), target_sparsity))
    return list(keep.split([m.numel for m in members]))


def prune_expander(
    weights: Sequence[PrunableWeight],
    target_sparsity: float,
    params: MethodParams,
    generator: torch.Generator,
) -> PruningResult:
    assert isinstance(params, ExpanderParams)
    joint = params.graph == "cat"
    graphs: dict[str, list[PrunableWeight]] = {}
    for weight in weights:
        graphs.setdefault(_graph_name(weight, joint), []).append(weight)
    key = params.criterion + ("_w" if params.weighted else "")

    candidates: dict[str, list[torch.Tensor]] = {}
    crosses: dict[str, bool] = {}
    for name, members in graphs.items():
        if params.selection == "magnitude":
            raw = [m.weight.detach().abs().float() for m in members]
        else:
            raw = [torch.rand(m.weight.shape, generator=generator).to(m.weight.device) for m in members]
        scores = [masked_scores(m, s) for m, s in zip(members, raw, strict=True)]
        flat = _candidate(members, scores, target_sparsity)
        candidates[name] = [f.reshape(m.weight.shape) for f, m in zip(flat, members, strict=True)]
        crosses[name] = params.stop != "none" and _margins(members, candidates[name], params)[key] < 0

    stop_all = params.stop == "first_crossing" and any(crosses.values())
    masks: dict[str, torch.Tensor] = {}
    diagnostics: dict[str, float] = {}
    for name, members in graphs.items():
        stopped = stop_all or crosses[name]
        chosen = [m.mask.to(torch.bool) for m in members] if stopped else candidates[name]
        masks |= {m.name: c for m, c in zip(members, chosen, strict=True)}
        margins = _margins(members, chosen, params)
        diagnostics |= {f"{name}.{k}": v for k, v in margins.items()}
        diagnostics[f"{name}.stopped"] = float(stopped)
    diagnostics["stopped_graphs"] = float(sum(stop_all or crossed for crossed in crosses.values()))
    return PruningResult(masks, diagnostics)


EXPANDER = PruningMethod(
    name="expander",
    params=ExpanderParams,
    prune=prune_expander,
    description="Per-layer-graph pruning (magnitude or random) that records the Ramanujan margins "
    "Δ_S/Δ_R every round and stops a graph (or the pool) before its margin turns negative. "
    "Use the iterative schedule; stopped graphs keep their masks, so the reached sparsity "
    "can fall short of the target (the accounting reports what was reached).",
)
