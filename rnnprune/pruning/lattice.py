"""Lattice (poset) pruning: dependency lattices, meet-irreducible neurons and centrality.

After Sengupta, "Lattice-Based Pruning in Recurrent Neural Networks via Poset Modeling"
(arXiv 2502.16525). Only the paper's abstract and introduction could be read, so most of
the method is the project specification's reconstruction (`../shared/research/lattice.md`).
What comes from where:

* **Paper**: an RNN is modelled as a poset and its *dependency lattice* is built; the
  *meet-irreducible neurons* are identified; the connections of critical neurons are kept and
  redundant ones removed; the adjacency is *binary* or *continuous-valued*; multilayer
  networks with top-down feedback are covered; MNIST. Third-party summaries add: a
  *centrality* measure is used too, and the model is an LSTM.
* **Specification's proposals** (§2.2, the defaults here): the strength of source i -> target j
  is the L2 norm of its gate weights in `weight_hh`; the binary adjacency keeps strengths
  above the q-quantile, the continuous one is strength / max strength; the order is the
  one-step unrolled bipartite order (neurons at t below neurons at t+1), whose dependency
  lattice is the concept lattice of that relation, never enumerated; target j is
  meet-irreducible (MI) iff its dependency set is not the intersection of the strictly larger
  ones; centrality is normalised in + out degree (strength); the keep set is MI plus the
  top ceil(rho*H) neurons by centrality (rho = 0.05); a non-kept neuron loses its incoming
  recurrent edges (all gate rows), and in binary mode every edge outside the adjacency goes
  too. With several layers, each layer's context has the stacked predecessors as sources
  (the layer below at t+1 through `weight_ih_l{l}`, its own layer at t; a layer above at t
  through top-down weights would join them, but PyTorch's stacked RNNs have none).
* **Alternatives** of the specification's §2.3 table, each switchable in `LatticeParams`
  (table row in brackets): which weights make the graph [1] (`extra_nodes`, plus the
  trial's `pruning.scope`: the method only sees, and only prunes, pool tensors), gate
  aggregation [2] (`aggregation`), binary threshold [4] (`threshold`, `quantile`, `tau`),
  continuous normalisation and support [5] (`normalization`, `epsilon`), the order [6]
  (`order`, `unroll_steps`), the lattice [7] (`lattice`), duplicate extents [8]
  (`duplicates`), centrality [9] (`centrality`), the keep rule [10] (`keep_rule`, `rho`,
  `score_keep`), what a non-kept neuron loses [11] (`remove`), multilayer context [15]
  (`context`, `bottom_up`). Schedules [12] and the sparsity pool [13] are the core's
  `pruning.schedule` and `pruning.scope`.
* **This implementation's choices** where the specification is silent: the binary
  threshold's q is derived from the trial's target sparsity unless `quantile` fixes it, and is
  corrected in a few steps so that the pool reaches the target after the keep rule (the
  threshold used is reported); one threshold per context, pooled over gate contexts;
  already-pruned weights count as absent edges; a target the pool already meets prunes
  nothing; the remaining details are in the parameter descriptions.

Sparsity: in binary mode with a derived q the pool reaches the target to within a fraction
of a point unless the keep rule alone removes more than the target (the reading then fixes
it: at small q many extents are full, i.e. the top element, so small networks lose whole
neurons early). A target the pool already meets is a no-op event in every mode. With
`quantile`, `threshold` = mean or absolute, or in continuous mode (sparsity about 1 - rho),
the reading fixes the sparsity; the accounting measures what it reached.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from pydantic import Field, model_validator

from rnnprune.aliases import rename_deprecated
from rnnprune.pruning.base import Masks, MethodParams, PrunableWeight, PruningMethod, PruningResult

Array = TypeVar("Array", np.ndarray, torch.Tensor)

# Binary mode with a derived quantile: stop correcting q once the pool is this close.
_CALIBRATION_TOLERANCE = 0.002
_CALIBRATION_STEPS = 8
_POWER_ITERATIONS = 300


class LatticeParams(MethodParams):
    """Parameters of lattice pruning; defaults are the specification's §2.2 reading."""

    mode: Literal["binary", "continuous"] = Field(
        default="binary",
        description="binary: adjacency = strength above a threshold; continuous: strength / max "
        "strength, support = entries above `epsilon` (near-total sparsity, fixed by rho).",
    )
    aggregation: Literal["l2", "max", "mean", "gatewise"] = Field(
        default="l2",
        description="How the gate weights of one connection make its strength (L2 norm, max or mean "
        "of |w| over gates), or gatewise: one context per gate, masks per gate block.",
    )
    threshold: Literal["quantile", "row_quantile", "mean", "absolute"] = Field(
        default="quantile",
        description="Binary threshold: quantile q of all strengths, q per target neuron (PyTorch "
        "row), mean strength, or the absolute `tau`.",
    )
    quantile: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Fixed q for the quantile thresholds (the spec's 0.5); None: derived from the "
        "target sparsity and corrected so that the pool reaches it.",
    )
    tau: float | None = Field(default=None, ge=0.0, description="Absolute threshold (threshold=absolute).")
    normalization: Literal["max", "row"] = Field(
        default="max",
        description="Continuous adjacency: strength / max strength, or / max of each target's row.",
    )
    epsilon: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Continuous support: entries with normalised strength > epsilon are edges.",
    )
    order: Literal["unrolled", "reachability"] = Field(
        default="unrolled",
        description="unrolled: source at t below target at t+T (acyclic); reachability: "
        "reflexive-transitive closure of the neuron graph (cycles collapse, spec §1.3).",
    )
    unroll_steps: int = Field(
        default=1,
        ge=1,
        description="T of the unrolled order: a source depends-on relation over paths of 1..T steps.",
    )
    lattice: Literal["concept", "macneille", "downset"] = Field(
        default="concept",
        description="concept: concept lattice of (sources, targets, dependency); macneille: "
        "Dedekind-MacNeille completion of targets ordered by inclusion of dependency sets; "
        "downset: lattice of down-sets (every neuron is meet-irreducible).",
    )
    duplicates: Literal["share", "lowest_index"] = Field(
        default="share",
        description="Targets with identical dependency sets share one verdict, or only the "
        "lowest-index one can be meet-irreducible (strict context reduction).",
    )
    centrality: Literal["degree", "eigenvector", "pagerank", "betweenness"] = Field(
        default="degree",
        description="Neuron centrality on the recurrent graph: (in + out) degree / strength over "
        "2H, eigenvector of A + A^T, PageRank (damping 0.85), or betweenness (hop counts).",
    )
    keep_rule: Literal["union", "intersect_median", "score"] = Field(
        default="union",
        description="union: MI plus the top ceil(rho*H) by centrality; intersect_median: MI with "
        "centrality >= median; score: top ceil(score_keep*H) by 1[MI] + centrality.",
    )
    rho: float = Field(default=0.05, ge=0.0, le=1.0, description="Centrality keep fraction (union).")
    score_keep: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Fraction of neurons kept by the score rule."
    )
    remove: Literal["incoming", "neuron"] = Field(
        default="incoming",
        description="What a non-kept neuron loses: its incoming edges (all gate rows), or the whole "
        "neuron (its outgoing edges too, wherever they are in the context).",
    )
    bottom_up: bool = Field(
        default=True,
        description="Layer l > 0: the layer below (weight_ih_l{l}) joins the sources of the context.",
    )
    extra_nodes: tuple[Literal["input", "readout"], ...] = Field(
        default=(),
        description="Extra graph nodes: input features as sources of layer 0 (weight_ih_l0), the "
        "readout classes as targets of the top layer (always kept). Only pool tensors can join.",
    )
    context: Literal["per_layer", "global"] = Field(
        default="per_layer",
        description="One context (lattice, threshold, centrality) per layer, or one over all layers.",
    )

    @model_validator(mode="before")
    @classmethod
    def _old_spellings(cls, raw: Any) -> Any:
        return rename_deprecated(raw, {"normalisation": "normalization"}, "pruning.params")

    @model_validator(mode="after")
    def _tau_for_absolute(self) -> LatticeParams:
        if self.mode == "binary" and self.threshold == "absolute" and self.tau is None:
            raise ValueError("threshold 'absolute' needs tau (the strength above which an edge exists)")
        return self


# ---------------------------------------------------------------------------------------------
# Meet-irreducibility without enumerating the lattice


def meet_irreducible(incidence: Array, duplicates: Literal["share", "lowest_index"] = "share") -> Array:
    """Which targets' attribute concepts are meet-irreducible in the concept lattice.

    `incidence[..., i, j]` says target j depends on source i (a boolean sources x targets
    matrix, or a batch of them). Target j is meet-irreducible iff its extent ext(j) differs from
    X(j), the intersection of the strictly larger extents (all sources when there are none),
    which is the same as having exactly one upper cover. Two matrix products give every X(j):
    O(sources * targets^2) work, no lattice element is ever built. A full column is the top
    element and never meet-irreducible. Returns the same array type as given.
    """
    as_numpy = isinstance(incidence, np.ndarray)
    relation = torch.from_numpy(incidence) if as_numpy else incidence
    verdict = _meet_irreducible(relation.to(torch.bool), lowest_index=duplicates == "lowest_index")
    return verdict.cpu().numpy() if as_numpy else verdict


def _meet_irreducible(relation: torch.Tensor, lowest_index: bool) -> torch.Tensor:
    # Counts are exact in float32 up to 2^24 sources; float products use the fast BLAS path.
    dense = relation.to(torch.float32)
    size = dense.sum(-2)
    overlap = dense.transpose(-1, -2) @ dense  # [j, k] = |ext(j) & ext(k)|
    contains = overlap == size.unsqueeze(-1)  # [j, k]: ext(k) includes ext(j)
    strictly = contains & (size.unsqueeze(-2) > size.unsqueeze(-1))
    # hits[j, i] = how many strictly larger extents contain source i; X(j) = where all of them do.
    hits = strictly.to(torch.float32) @ dense.transpose(-1, -2)
    in_meet = hits == strictly.sum(-1, keepdim=True).to(torch.float32)
    verdict = (in_meet & ~relation.transpose(-1, -2)).any(-1)
    if lowest_index:
        equal = contains & contains.transpose(-1, -2)
        verdict &= ~torch.tril(equal, diagonal=-1).any(-1)
    return verdict


# ---------------------------------------------------------------------------------------------
# Centrality on the recurrent neuron graph (source -> target), batched over gate contexts


def degree_centrality(adjacency: torch.Tensor) -> torch.Tensor:
    """(in + out) degree, or strength for weighted edges, over 2n."""
    n = adjacency.shape[-1]
    return (adjacency.sum(-2) + adjacency.sum(-1)) / (2 * n)


def eigenvector_centrality(adjacency: torch.Tensor) -> torch.Tensor:
    """Perron vector of the symmetrised graph A + A^T (unit L2 norm), by power iteration.

    Symmetrising keeps the measure defined on graphs that are not strongly connected; the
    identity shift stops the iteration from oscillating on bipartite-like graphs.
    """
    n = adjacency.shape[-1]
    shifted = adjacency + adjacency.transpose(-1, -2) + torch.eye(n, dtype=adjacency.dtype)
    vector = torch.ones(*adjacency.shape[:-2], n, 1, dtype=adjacency.dtype)
    for _ in range(_POWER_ITERATIONS):
        following = shifted @ vector
        following = following / following.norm(dim=-2, keepdim=True).clamp_min(1e-30)
        if torch.allclose(following, vector, rtol=0.0, atol=1e-12):
            break
        vector = following
    return following.squeeze(-1)


def pagerank_centrality(adjacency: torch.Tensor, damping: float = 0.85) -> torch.Tensor:
    """PageRank of the directed weighted graph; dangling neurons spread their rank uniformly."""
    n = adjacency.shape[-1]
    out = adjacency.sum(-1, keepdim=True)
    transition = torch.where(out > 0, adjacency / out.clamp_min(1e-30), 0.0)
    dangling = (out.squeeze(-1) == 0).to(adjacency.dtype)
    rank = torch.full((*adjacency.shape[:-2], 1, n), 1.0 / n, dtype=adjacency.dtype)
    for _ in range(_POWER_ITERATIONS):
        spread = (rank.squeeze(-2) * dangling).sum(-1, keepdim=True).unsqueeze(-1) / n
        following = (1 - damping) / n + damping * (rank @ transition + spread)
        if torch.allclose(following, rank, rtol=0.0, atol=1e-14):
            break
        rank = following
    return following.squeeze(-2)


def betweenness_centrality(adjacency: torch.Tensor) -> torch.Tensor:
    """Directed betweenness on the support graph (hop counts), normalised by (n-1)(n-2).

    Brandes' algorithm run for all sources at once: breadth-first levels and the dependency
    accumulation are matrix products, O(n^3 * diameter) per gate context.
    """
    return torch.stack(
        [_betweenness(graph) for graph in adjacency.reshape(-1, *adjacency.shape[-2:])]
    ).reshape(adjacency.shape[:-1])


def _betweenness(graph: torch.Tensor) -> torch.Tensor:
    n = graph.shape[-1]
    edges = ((graph > 0) & ~torch.eye(n, dtype=torch.bool)).to(torch.float64)
    distance = torch.full((n, n), -1, dtype=torch.int64)
    distance.fill_diagonal_(0)
    paths = torch.eye(n, dtype=torch.float64)  # [s, v] = number of shortest s -> v paths
    frontier = torch.eye(n, dtype=torch.bool)
    level = 0
    while frontier.any():
        reached = (paths * frontier) @ edges
        new = (reached > 0) & (distance < 0)
        paths = torch.where(new, reached, paths)
        distance[new] = level + 1
        frontier, level = new, level + 1
    dependency = torch.zeros(n, n, dtype=torch.float64)
    for depth in range(level - 1, 0, -1):
        weight = torch.where(distance == depth + 1, (1 + dependency) / paths.clamp_min(1), 0.0)
        dependency += torch.where(distance == depth, paths * (weight @ edges.T), 0.0)
    scale = (n - 1) * (n - 2) if n > 2 else 1
    return (dependency.sum(0) / scale).to(graph.dtype)


_CENTRALITY = {
    "degree": degree_centrality,
    "eigenvector": eigenvector_centrality,
    "pagerank": pagerank_centrality,
    "betweenness": betweenness_centrality,
}


def _top(scores: torch.Tensor, count: int) -> torch.Tensor:
    """The `count` highest scores of each row; ties go to the lower index (stable sort)."""
    chosen = torch.zeros_like(scores, dtype=torch.bool)
    order = torch.sort(-scores, dim=-1, stable=True).indices[..., :count]
    return chosen.scatter(-1, order, True)


def keep_set(mi: torch.Tensor, centrality: torch.Tensor, params: LatticeParams) -> torch.Tensor:
    """Neurons whose connections survive (spec §2.3 row 10), per gate context."""
    n = mi.shape[-1]
    if params.keep_rule == "union":
        return mi | _top(centrality, math.ceil(params.rho * n - 1e-9))
    if params.keep_rule == "intersect_median":
        return mi & (centrality >= centrality.median(dim=-1, keepdim=True).values)
    return _top(mi.to(centrality.dtype) + centrality, math.ceil(params.score_keep * n - 1e-9))


# ---------------------------------------------------------------------------------------------
# Contexts: which tensors make which sources and targets


@dataclass(frozen=True)
class _Block:
    """A weight tensor placed in a context: its sources and targets are node groups."""

    weight: PrunableWeight
    source: str  # "input" or "layer{l}"
    target: str  # "layer{l}" or "classes"


@dataclass(frozen=True)
class _Context:
    blocks: tuple[_Block, ...]
    sources: dict[str, slice]
    targets: dict[str, slice]
    strength: torch.Tensor  # (gate contexts, sources, targets), zero where there is no edge
    present: torch.Tensor  # (sources, targets): positions backed by a weight

    @property
    def neuron_count(self) -> int:
        """Neuron targets come first, readout classes (if any) after them."""
        return sum(s.stop - s.start for g, s in self.targets.items() if g != "classes")

    def square_rows(self) -> torch.Tensor:
        """For each neuron target, its row among the sources (-1: not a source here)."""
        rows = []
        for group, columns in self.targets.items():
            if group == "classes":
                continue
            width = columns.stop - columns.start
            own = self.sources.get(group)
            rows.append(torch.arange(own.start, own.stop) if own else torch.full((width,), -1))
        return torch.cat(rows)


def _neurons(weight: PrunableWeight) -> str:
    """The neuron group a recurrent matrix's rows belong to (`layer0`, `layer0r` reversed)."""
    return f"layer{weight.layer}" + ("r" if weight.direction else "")


def _read_layer(weight: PrunableWeight, weights: Sequence[PrunableWeight], layer: int) -> str | None:
    """The neuron group whose outputs are exactly `weight`'s columns: the unidirectional
    recurrent layer `layer` of the same module, of as many units as `weight` has columns.
    None when the columns are something else (both directions of a bidirectional layer, a
    projection between two recurrent modules): those matrices have no place in the lattice."""
    producers = [w for w in weights if w.kind == "hh" and w.layer == layer]
    if len(producers) != 1 or producers[0].weight.shape[1] != weight.weight.shape[1]:
        return None
    if weight.kind != "readout" and producers[0].module != weight.module:
        return None
    return _neurons(producers[0])


def _blocks(weights: Sequence[PrunableWeight], params: LatticeParams) -> dict[int, list[_Block]]:
    """Blocks by target layer; readout classes hang on the top layer."""
    by_layer: dict[int, list[_Block]] = {}
    for w in weights:
        if w.kind == "hh":
            block = _Block(w, _neurons(w), _neurons(w))
        elif w.kind == "ih" and w.layer > 0 and params.bottom_up:
            source = _read_layer(w, weights, w.layer - 1)
            if source is None:
                continue
            block = _Block(w, source, _neurons(w))
        elif w.kind == "ih" and w.layer == 0 and "input" in params.extra_nodes:
            block = _Block(w, "input", _neurons(w))
        elif w.kind == "readout" and "readout" in params.extra_nodes:
            source = _read_layer(w, weights, w.layer - 1)
            if source is None:
                continue
            block = _Block(w, source, "classes")
        else:
            continue
        by_layer.setdefault(w.layer if w.kind != "readout" else w.layer - 1, []).append(block)
    return by_layer


def _layout(blocks: Sequence[_Block], key: str) -> dict[str, slice]:
    sizes: dict[str, int] = {}
    for block in blocks:
        gates = len(block.weight.gates)
        rows, columns = block.weight.weight.shape
        sizes[block.source] = columns
        sizes[block.target] = rows // gates
    layout, offset = {}, 0
    for group in sorted({getattr(b, key) for b in blocks}, key=_group_order):
        layout[group] = slice(offset, offset + sizes[group])
        offset += sizes[group]
    return layout


def _group_order(group: str) -> tuple[int, int, int]:
    if group == "input":
        return (0, 0, 0)
    if group == "classes":
        return (2, 0, 0)
    layer = group.removeprefix("layer")
    return (1, int(layer.removesuffix("r")), int(layer.endswith("r")))


def _strength(weight: PrunableWeight, aggregation: str) -> torch.Tensor:
    """|w| of a block as (gates, sources, targets), aggregated over gates unless gatewise."""
    gates = len(weight.gates)
    values = (weight.weight.detach() * weight.mask).abs().to(torch.float32).cpu()
    per_gate = values.reshape(gates, -1, values.shape[1]).transpose(1, 2)
    if aggregation == "gatewise":
        return per_gate
    if aggregation == "l2":
        return per_gate.pow(2).sum(0, keepdim=True).sqrt()
    if aggregation == "max":
        return per_gate.amax(0, keepdim=True)
    return per_gate.mean(0, keepdim=True)


def _context(blocks: Sequence[_Block], params: LatticeParams) -> _Context:
    sources, targets = _layout(blocks, "source"), _layout(blocks, "target")
    gate_contexts = max(len(b.weight.gates) for b in blocks) if params.aggregation == "gatewise" else 1
    n_sources = max(s.stop for s in sources.values())
    n_targets = max(s.stop for s in targets.values())
    strength = torch.zeros(gate_contexts, n_sources, n_targets)
    present = torch.zeros(n_sources, n_targets, dtype=torch.bool)
    for block in blocks:
        rows, columns = sources[block.source], targets[block.target]
        strength[:, rows, columns] = _strength(block.weight, params.aggregation)  # readout broadcasts
        present[rows, columns] = True
    return _Context(tuple(blocks), sources, targets, strength, present)


def _contexts(weights: Sequence[PrunableWeight], params: LatticeParams) -> list[_Context]:
    """The contexts to examine; one without neuron targets (a lone readout) has no lattice."""
    by_layer = _blocks(weights, params)
    if params.context == "global":
        groups = [[b for layer in sorted(by_layer) for b in by_layer[layer]]]
    else:
        groups = [by_layer[layer] for layer in sorted(by_layer)]
    return [_context(g, params) for g in groups if any(b.target != "classes" for b in g)]


# ---------------------------------------------------------------------------------------------
# One evaluation of the method at a given quantile


@dataclass(frozen=True)
class _Verdict:
    support: torch.Tensor  # (gate contexts, sources, targets): the edges of the adjacency
    kept: dict[str, torch.Tensor]  # neuron group -> (gate contexts, neurons)
    diagnostics: dict[str, float]


def _kth_smallest(values: torch.Tensor, fraction: float) -> float:
    """The threshold below or at which `fraction` of `values` lie (0 when nothing is)."""
    k = round(fraction * values.numel())
    return float(torch.kthvalue(values, k).values) if k >= 1 else 0.0


def _adjacency(
    context: _Context, params: LatticeParams, q: float
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(weighted adjacency, support, threshold) of one context."""
    strength, present = context.strength, context.present
    if params.mode == "continuous":
        if params.normalization == "max":
            scale = strength[:, present].max().clamp_min(1e-30)
        else:
            scale = strength.amax(dim=-2, keepdim=True).clamp_min(1e-30)
        normalised = strength / scale
        support = (normalised > params.epsilon) & present
        return normalised * support, support, params.epsilon
    if params.threshold == "row_quantile":
        # Positions without a weight sort last, so each column's k-th value is over its own sources.
        ordered = torch.sort(strength.masked_fill(~present, float("inf")), dim=-2).values
        counts = torch.round(q * present.sum(0)).to(torch.int64)
        index = (counts - 1).clamp_min(0).expand(strength.shape[0], 1, -1)
        tau = torch.where(counts > 0, ordered.gather(-2, index), 0.0)
        support = (strength > tau) & present
        reported = float(tau[..., counts > 0].mean()) if bool((counts > 0).any()) else 0.0
        return support.to(strength.dtype), support, reported
    values = strength[:, present].reshape(-1)
    if params.threshold == "quantile":
        tau = _kth_smallest(values, q)
    elif params.threshold == "mean":
        tau = float(values.mean())
    else:
        tau = float(params.tau or 0.0)
    support = (strength > tau) & present
    return support.to(strength.dtype), support, tau


def _order(context: _Context, support: torch.Tensor, params: LatticeParams) -> torch.Tensor:
    """The dependency relation (sources x targets) whose lattice is examined."""
    if params.order == "unrolled" and params.unroll_steps == 1:
        return support
    neurons = context.neuron_count
    rows = context.square_rows()
    has_row = rows >= 0
    recurrent = torch.zeros(support.shape[0], neurons, neurons)
    recurrent[:, has_row] = support[:, rows[has_row], :neurons].to(torch.float32)
    identity = torch.eye(neurons).expand_as(recurrent)
    if params.order == "unrolled":
        # closure = I + R + ... + R^(T-1): paths of 1..T edges end with one support edge.
        closure, power = identity.clone(), identity
        for _ in range(params.unroll_steps - 1):
            power = ((power @ recurrent) > 0).to(torch.float32)
            closure = ((closure + power) > 0).to(torch.float32)
    else:
        closure = ((identity + recurrent) > 0).to(torch.float32)
        while True:  # repeated squaring: log2(n) products reach the transitive closure
            squared = ((closure @ closure) > 0).to(torch.float32)
            if torch.equal(squared, closure):
                break
            closure = squared
    relation = support.clone()
    relation[..., :neurons] = (support[..., :neurons].to(torch.float32) @ closure) > 0
    if params.order == "reachability":  # i <= i: each neuron's own row joins its down-set
        positions = torch.nonzero(has_row).squeeze(-1)
        relation[:, rows[has_row], positions] = True
    return relation


def _lattice_mi(relation: torch.Tensor, params: LatticeParams, neurons: int) -> torch.Tensor:
    if params.lattice == "downset":
        # In the lattice of down-sets the meet-irreducibles are exactly P minus the up-set of p,
        # one per element: every neuron is meet-irreducible (the spec's "useless" reading).
        return torch.ones(relation.shape[0], neurons, dtype=torch.bool)
    if params.lattice == "macneille":
        # Context (targets, targets, <=) with j' <= j iff ext(j') is inside ext(j).
        dense = relation.to(torch.float32)
        overlap = dense.transpose(-1, -2) @ dense
        relation = overlap == dense.sum(-2).unsqueeze(-1)
    return _meet_irreducible(relation, params.duplicates == "lowest_index")[..., :neurons]


def _verdict(context: _Context, params: LatticeParams, q: float) -> _Verdict:
    adjacency, support, tau = _adjacency(context, params, q)
    neurons = context.neuron_count
    mi = _lattice_mi(_order(context, support, params), params, neurons)
    rows = context.square_rows()
    has_row = rows >= 0
    graph = torch.zeros(adjacency.shape[0], neurons, neurons, dtype=torch.float64)
    graph[:, has_row] = adjacency[:, rows[has_row], :neurons].to(torch.float64)
    kept = keep_set(mi, _CENTRALITY[params.centrality](graph), params)
    groups = {g: s for g, s in context.targets.items() if g != "classes"}
    diagnostics: dict[str, float] = {}
    gate_contexts = mi.shape[0]
    for name, columns in groups.items():
        present = context.present[:, columns].sum() * gate_contexts
        diagnostics |= {
            f"{name}.neurons": float(columns.stop - columns.start),
            # Averaged over gate contexts (one in every mode but gatewise), so counts are of neurons.
            f"{name}.meet_irreducible": float(mi[:, columns].sum()) / gate_contexts,
            f"{name}.kept": float(kept[:, columns].sum()) / gate_contexts,
            f"{name}.threshold": tau,
            f"{name}.adjacency_density": float(support[:, :, columns].sum()) / max(float(present), 1.0),
        }
    return _Verdict(support, {g: kept[:, s] for g, s in groups.items()}, diagnostics)


def _masks(contexts: Sequence[_Context], verdicts: Sequence[_Verdict], params: LatticeParams) -> Masks:
    """Edge masks of every block: edges of the adjacency into kept neurons (and out of them)."""
    kept = {g: k for verdict in verdicts for g, k in verdict.kept.items()}
    masks: Masks = {}
    for context, verdict in zip(contexts, verdicts, strict=True):
        for block in context.blocks:
            rows, columns = context.sources[block.source], context.targets[block.target]
            edges = verdict.support[:, rows, columns]
            if block.target in kept:
                edges = edges & kept[block.target].unsqueeze(-2)
            if params.remove == "neuron" and block.source in kept:
                edges = edges & kept[block.source].unsqueeze(-1)
            masks[block.weight.name] = _expand(edges, len(block.weight.gates)).to(block.weight.mask.device)
    return masks


def _expand(edges: torch.Tensor, gates: int) -> torch.Tensor:
    """(gate contexts, sources, targets) -> PyTorch layout (gates * targets, sources)."""
    if edges.shape[0] == gates:
        return edges.transpose(1, 2).reshape(gates * edges.shape[2], edges.shape[1])
    if edges.shape[0] == 1:
        return edges[0].T.repeat(gates, 1)
    return edges.any(0).T  # a gateless readout in gatewise mode stays if any gate keeps it


def _pool_sparsity(weights: Sequence[PrunableWeight], masks: Masks) -> float:
    """Pool sparsity once the new masks are nested in the current ones (as the core will)."""
    pruned = 0
    for w in weights:
        kept = w.mask.bool() & masks[w.name] if w.name in masks else w.mask.bool()
        pruned += int((~kept).sum())
    return pruned / sum(w.numel for w in weights)


# ---------------------------------------------------------------------------------------------
# The method


def prune_lattice(
    weights: Sequence[PrunableWeight],
    target_sparsity: float,
    params: MethodParams,
    generator: torch.Generator,
) -> PruningResult:
    """Masks from the dependency lattice; deterministic (the generator is not needed)."""
    assert isinstance(params, LatticeParams)
    contexts = _contexts(weights, params)
    lattice_names = {b.weight.name for c in contexts for b in c.blocks}
    # A target the pool already meets (the first event of a gradual ramp asks for 0) prunes
    # nothing: at q = 0 every extent is full, the lattice is one top element, and all but the
    # top-rho neurons would go. The lattice is still examined, for the diagnostics.
    current = _pool_sparsity(weights, {})
    skip = target_sparsity <= current
    calibrate = (
        params.mode == "binary"
        and params.threshold in ("quantile", "row_quantile")
        and params.quantile is None
        and not skip
    )
    if params.quantile is not None:
        q = params.quantile
    else:
        inside = sum(w.numel for w in weights if w.name in lattice_names)
        outside = sum(int((~w.mask.bool()).sum()) for w in weights if w.name not in lattice_names)
        needed = target_sparsity * sum(w.numel for w in weights) - outside
        q = min(max(needed / max(inside, 1), 0.0), 1.0)

    best: tuple[float, Masks, list[_Verdict], float] | None = None
    steps = 0
    while True:
        steps += 1
        verdicts = [_verdict(c, params, q) for c in contexts]
        masks = _masks(contexts, verdicts, params)
        sparsity = _pool_sparsity(weights, masks)
        error = sparsity - target_sparsity
        if best is None or abs(error) < abs(best[0] - target_sparsity):
            best = (sparsity, masks, verdicts, q)
        following = min(max(q - error, 0.0), 1.0)
        if (
            not calibrate
            or abs(error) <= _CALIBRATION_TOLERANCE
            or steps >= _CALIBRATION_STEPS
            or following == q
        ):
            break
        q = following

    sparsity, masks, verdicts, q = best
    if skip:
        masks, sparsity = {w.name: w.mask.bool() for w in weights}, current
    diagnostics = {key: value for verdict in verdicts for key, value in verdict.diagnostics.items()}
    diagnostics |= {"sparsity": sparsity, "skipped": float(skip), "calibration_steps": float(steps)}
    if params.mode == "binary" and params.threshold in ("quantile", "row_quantile"):
        diagnostics["quantile"] = q
    untouched = {w.name: torch.ones_like(w.mask, dtype=torch.bool) for w in weights if w.name not in masks}
    return PruningResult({**masks, **untouched}, diagnostics)


LATTICE = PruningMethod(
    name="lattice",
    params=LatticeParams,
    prune=prune_lattice,
    description="Lattice (poset) pruning after Sengupta 2025: keep the edges of meet-irreducible and "
    "central neurons in the one-step dependency lattice. Binary mode reaches the target sparsity "
    "(unless `quantile`, mean or absolute thresholds fix it); continuous mode fixes it (about 1 - rho).",
)
