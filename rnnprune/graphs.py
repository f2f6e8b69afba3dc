"""Recurrent layers read as bipartite graphs: spectral gaps, Ramanujan margins, Cheeger bounds.

A masked weight matrix `W` (PyTorch layout, rows = outputs) is the biadjacency `B` of a
bipartite graph: left nodes are the inputs (columns), right nodes the outputs (rows), and
every surviving weight is one edge (`B = M`), or an edge of weight |w| (`B = |W ⊙ M|`).
The adjacency's eigenvalues are ±σ_i(B), so everything comes from the top two singular
values of `B` and its row and column sums; the (n_in + n_out)² adjacency is never formed.

Definitions follow Pal et al. (ICML 2022) and Hoang et al. (ICLR 2023), as the spec
(`expander.md` §1) reconstructs them:

- `mu0 = σ1(B)`, `mu_hat = σ2(B)` counted with multiplicity (a graph split into two equal
  components has `mu_hat == mu0`);
- average degrees over non-isolated nodes, `d_left = |E| / |L'|`, `d_right = |E| / |R'|`;
- `delta_s = 2√(mu0 − 1) − mu_hat` and `delta_r = √(d_left − 1) + √(d_right − 1) − mu_hat`
  (Hoory's bound for irregular bipartite graphs); a layer is "Ramanujan" while Δ ≥ 0;
- weighted variants on `|W ⊙ M|` with strengths (sums of |w|) in place of degrees, and the
  plain weighted gap `mu0_w − mu_hat_w` (never negative, by Perron–Frobenius);
- normalised Laplacian `λ1 = 1 − s2`, with `s2` the second singular value of
  `D_R^{-1/2} B D_L^{-1/2}`, giving Chung's Cheeger bounds `λ1 / 2 ≤ φ(G) ≤ √(2 λ1)`.

Square roots clamp `d − 1` at 0 (as the spec's numerical guard says), so a graph whose
average degree or Perron root is below 1 gets a non-positive margin instead of NaN; a graph
with no edge at all gets −inf (no expansion to speak of).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import LinearOperator, eigsh, svds

if TYPE_CHECKING:  # models import the pruning contract, which imports this module's users
    from rnnprune.models.masking import MaskedWeights

DENSE_MAX_SIDE = 256
"""Up to this many nodes on the smaller side, a dense SVD is exact and faster than Lanczos."""

LANCZOS_TOL = 1e-6
"""ARPACK's stopping tolerance on the Gram eigenvalues σ² (residual ≤ tol·σ²). For a symmetric
problem the eigenvalue error is of order residual² / gap, so σ comes out far more accurate
than `tol`: against tol = 0 (machine precision) it differed by < 1e-9 on 4096×1024 masks at
2-30% density, with half the matrix-vector products. Gaps are reported to ~1e-3."""

GRAM_RTOL = 1e-8
"""Below σ_k² = GRAM_RTOL·σ1², the Gram eigenvalue's rounding (~eps·σ1², absolute) is no longer
negligible against σ_k² (at the threshold it moves σ_k by ~1e-10·σ1, inside the 1e-8·σ1 the
tests ask of every path), so B itself is decomposed."""

DISCONNECTED_RTOL = 1e-9
"""`mu_hat` within this relative distance of `mu0` is the repeated root of a split graph."""


def _to_numpy(tensor: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(tensor, torch.Tensor):
        return tensor.detach().to("cpu", torch.float64).numpy()
    return np.asarray(tensor, dtype=np.float64)


def top_singular_values(matrix: np.ndarray | sp.sparray, k: int = 2) -> np.ndarray:
    """The `k` largest singular values, descending (zeros where the rank is smaller).

    Both paths work on the Gram matrix of the smaller side (BᵀB or BBᵀ), whose eigenvalues
    are σ². Small matrices take a dense symmetric eigensolve of it: on this shared 2-core
    machine a 512×156 `np.linalg.svd` took 0.08-0.4 s under load (OpenBLAS threads fighting
    for cores) against ~2 ms for this. Large ones take ARPACK's Lanczos on it as a
    matrix-free operator: two sparse products per step, in a space half the size `svds`
    works in. The start vector is a fixed seeded random vector: reproducible, and (unlike
    the all-ones vector, the Perron vector of a biregular graph) never orthogonal to the
    second singular vector.

    Squaring costs accuracy only for σ far below σ1 (absolute error ~ eps·σ1²/σ): when
    σ_k² < GRAM_RTOL·σ1² (e.g. a complete bipartite graph, σ2 = 0) the singular values are
    recomputed from B itself.
    """
    rows, cols = matrix.shape
    small = min(rows, cols)
    if small == 0:
        return np.zeros(k)
    if small <= max(DENSE_MAX_SIDE, k + 1):
        dense = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
        gram = dense.T @ dense if cols <= rows else dense @ dense.T
        squares = np.linalg.eigvalsh(gram)[::-1][:k]
        if len(squares) < k or squares[-1] < GRAM_RTOL * squares[0]:
            values = np.linalg.svd(dense, compute_uv=False)[:k]
            return np.pad(values, (0, k - len(values)))
        return np.sqrt(squares)
    csr = sp.csr_array(matrix)
    transposed = csr.T.tocsr()
    if cols <= rows:
        operator = LinearOperator((cols, cols), matvec=lambda x: transposed @ (csr @ x), dtype=np.float64)
    else:
        operator = LinearOperator((rows, rows), matvec=lambda x: csr @ (transposed @ x), dtype=np.float64)
    start = np.random.default_rng(0).random(small)
    squares = np.sort(eigsh(operator, k=k, which="LA", tol=LANCZOS_TOL, v0=start, return_eigenvectors=False))[
        ::-1
    ]
    if squares[-1] < GRAM_RTOL * squares[0]:
        values = svds(csr, k=k, v0=np.random.default_rng(0).random(small), return_singular_vectors=False)
        return np.sort(values)[::-1]
    return np.sqrt(squares)


def _top_two(matrix: np.ndarray | sp.sparray) -> tuple[float, float]:
    first, second = (float(v) for v in top_singular_values(matrix, 2))
    if first > 0 and first - second <= DISCONNECTED_RTOL * first:
        second = first
    return first, second


def _margin(x: float) -> float:
    return float(np.sqrt(max(x - 1.0, 0.0)))


def _csr(values: np.ndarray) -> sp.csr_array:
    """CSR straight from the row-major non-zeros (already sorted: no COO round trip)."""
    rows, cols = np.nonzero(values)
    indptr = np.zeros(values.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=values.shape[0]), out=indptr[1:])
    return sp.csr_array((values[rows, cols], cols, indptr), shape=values.shape)


def _entry_rows(graph: sp.csr_array) -> np.ndarray:
    """Row index of every stored entry (CSR keeps only the row pointers)."""
    return np.repeat(np.arange(graph.shape[0]), np.diff(graph.indptr))


def _mean_strength(strengths: np.ndarray, total: float) -> float:
    """Average degree (or strength) over the non-isolated nodes of one side."""
    return total / max(int(np.count_nonzero(strengths)), 1)


def _normalised_second(graph: sp.csr_array, left: np.ndarray, right: np.ndarray) -> float:
    """s2 of D_R^{-1/2} B D_L^{-1/2}; its s1 is exactly 1.

    Isolated nodes get scale 0: their rows and columns are zero and add only zero singular
    values, so the spectrum is that of the graph without them, with no copy to drop them.
    """
    inv_left = np.divide(1.0, np.sqrt(left), out=np.zeros_like(left), where=left > 0)
    inv_right = np.divide(1.0, np.sqrt(right), out=np.zeros_like(right), where=right > 0)
    scaled = graph.data * inv_right[_entry_rows(graph)] * inv_left[graph.indices]
    return _top_two(sp.csr_array((scaled, graph.indices, graph.indptr), shape=graph.shape))[1]


def spectral_gaps(
    mask: torch.Tensor | np.ndarray,
    weights: torch.Tensor | np.ndarray | None = None,
    cheeger: bool = True,
) -> dict[str, float]:
    """Spectral quantities of the bipartite graph of `mask` (n_out × n_in, rows = right nodes).

    `mask` may hold multiplicities (merged gates give a multigraph); degrees then count them.
    With `weights`, the weighted graph `|weights ⊙ mask|` is measured too (keys ending `_w`).
    `cheeger=False` skips the normalised-Laplacian solve (one eigensolve fewer).
    """
    counts = _to_numpy(mask)
    graph = _csr(counts)
    result = _graph_stats(graph, cheeger)
    result["density"] = graph.nnz / counts.size if counts.size else 0.0
    if weights is not None:
        # Same edges as the mask, |w| as data: np.nonzero's row-major order is the CSR order.
        magnitudes = np.abs(_to_numpy(weights)[np.nonzero(counts)])
        weighted = sp.csr_array((magnitudes, graph.indices, graph.indptr), shape=graph.shape)
        stats = _graph_stats(weighted, cheeger=False)
        result |= {
            "mu0_w": stats["mu0"],
            "mu_hat_w": stats["mu_hat"],
            "s_left": stats["d_left"],
            "s_right": stats["d_right"],
            "delta_s_w": stats["delta_s"],
            "delta_r_w": stats["delta_r"],
            "gap_w": stats["mu0"] - stats["mu_hat"],
        }
    return result


def _graph_stats(graph: sp.csr_array, cheeger: bool) -> dict[str, float]:
    left = np.bincount(graph.indices, weights=graph.data, minlength=graph.shape[1])
    right = np.bincount(_entry_rows(graph), weights=graph.data, minlength=graph.shape[0])
    total = float(graph.data.sum())
    d_left, d_right = _mean_strength(left, total), _mean_strength(right, total)
    mu0, mu_hat = _top_two(graph)
    if graph.nnz == 0:
        delta_s = delta_r = float("-inf")
    else:
        delta_s = 2.0 * _margin(mu0) - mu_hat
        delta_r = _margin(d_left) + _margin(d_right) - mu_hat
    stats = {
        "mu0": mu0,
        "mu_hat": mu_hat,
        "d_left": d_left,
        "d_right": d_right,
        "delta_s": delta_s,
        "delta_r": delta_r,
    }
    if cheeger:
        lambda1 = 1.0 - _normalised_second(graph, left, right) if graph.nnz else 0.0
        stats |= {
            "lambda1": lambda1,
            "cheeger_lower": lambda1 / 2.0,
            "cheeger_upper": float(np.sqrt(2.0 * max(lambda1, 0.0))),
        }
    return stats


# ---------------------------------------------------------------------------------------------
# The graphs of a recurrent classifier


@dataclass(frozen=True)
class LayerGraph:
    """One bipartite graph of a model: its multiplicity matrix and |W| on the same edges."""

    name: str
    counts: torch.Tensor  # (right nodes, left nodes); 0/1, or up to #gates with merged gates
    weights: torch.Tensor  # |W| summed over merged edges; 0 off the mask


def merge_gate_rows(matrix: torch.Tensor, num_gates: int) -> torch.Tensor:
    """Fold the stacked gate blocks (num_gates·H rows) onto H hidden units by summing."""
    return matrix.reshape(num_gates, -1, matrix.shape[-1]).sum(dim=0)


def layer_graphs(
    model: MaskedWeights, merge_gates: bool = False, include_cat: bool = True
) -> Iterator[LayerGraph]:
    """G_ih_l{k}, G_hh_l{k} (and G_cat_l{k} = [W_ih | W_hh]) of every recurrent layer.

    Right nodes are the gate pre-activation units (4H for an LSTM, 3H for a GRU), so each
    weight is one simple edge; `merge_gates` folds the gates onto the H hidden units instead,
    which makes a multigraph (the spec's alternative, kept switchable). The reverse direction
    of a bidirectional layer has graphs of its own (`G_hh_l0_reverse`).
    """
    layers: dict[tuple[int, int], dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}
    for weight in model.prunable_weights(("ih", "hh")):
        matrix = weight.weight.detach()
        counts = weight.mask.to(matrix.dtype)
        magnitudes = matrix.abs() * counts
        if merge_gates:
            counts, magnitudes = (merge_gate_rows(m, len(weight.gates)) for m in (counts, magnitudes))
        suffix = f"_l{weight.layer}" + ("_reverse" if weight.direction else "")
        layers.setdefault((weight.layer, weight.direction), {})[weight.kind] = (counts, magnitudes)
        yield LayerGraph(f"G_{weight.kind}{suffix}", counts, magnitudes)
        pieces = layers[(weight.layer, weight.direction)]
        if include_cat and weight.kind == "hh" and "ih" in pieces:
            yield LayerGraph(
                f"G_cat{suffix}",
                torch.cat([pieces["ih"][0], pieces["hh"][0]], dim=1),
                torch.cat([pieces["ih"][1], pieces["hh"][1]], dim=1),
            )


def graph_metrics(model: MaskedWeights, merge_gates: bool = False, prefix: str = "graph") -> dict[str, float]:
    """Flat scalar metrics of every layer graph (`graph.G_hh_l0.delta_r`, ...) for a trial."""
    return {
        f"{prefix}.{graph.name}.{key}": value
        for graph in layer_graphs(model, merge_gates)
        for key, value in spectral_gaps(graph.counts, graph.weights).items()
    }
