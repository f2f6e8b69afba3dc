"""Moduli regularization: penalty coefficients from random neuron positions on a metric space.

After Mackey et al., "Geometric sparsification in recurrent neural networks" (arXiv 2406.06290),
as the project specification (`../shared/research/moduli.md`) reconstructs the method from the
reference code. Every hidden neuron i of a recurrent layer gets a random point p_i on a moduli
space; the recurrent weight from neuron j to neuron i is penalised with the coefficient

    R_ij = scale · invert(permute(f(d(p_i, p_j))))

(f the inhibitor; permute and invert optional and applied in this order, as in the reference
code), so training keeps the connections the geometry makes cheap and magnitude pruning then
removes the rest. The constants (torus side 10, circle and sphere radius 5, S³ radius 10,
the DoG's 100, 5 and 4) are part of the method: they fix the penalty's strength (§5.4).

Everything is plain torch and differentiable in the points, so a trainable embedding (§1.8)
gets gradients through the distances, the inhibitor and the inversion's maximum; all random
draws come from the caller's `torch.Generator`, so a trial seed fixes the coefficients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from rnnprune.regularization import Regularizer

Space = Literal["circle", "sphere", "torus", "klein", "torus6", "s3", "standard", "none"]
Inhibitor = Literal["dog", "square", "ripple", "gauss", "identity"]

SIDE = 10.0
"""Side of the square (cube) whose opposite faces are glued: torus, 6-torus, Klein bottle."""
FLAT_DIMENSIONS: dict[str, int] = {"torus": 2, "klein": 2, "torus6": 6}
# Spheres: points are unit vectors in this many dimensions; distance = radius · angle.
SPHERE_DIMENSIONS: dict[str, int] = {"circle": 2, "sphere": 3, "s3": 4}
SPHERE_RADIUS: dict[str, float] = {"circle": 5.0, "sphere": 5.0, "s3": 10.0}
GEOMETRIC_SPACES: tuple[str, ...] = (*FLAT_DIMENSIONS, *SPHERE_DIMENSIONS)
"""Spaces with points; `standard` (R = 1) and `none` (R = 0) have none."""

# arccos has an infinite derivative at ±1: keep cosines this far inside so a trainable
# embedding's gradients stay finite (distances below ~1e-3 · radius are not resolved).
_ARCCOS_MARGIN = 1e-6
# Square roots of squared distances below this count as zero distance (finite gradients).
_TINY_SQUARED_DISTANCE = 1e-12


def sample_points(space: Space, size: int, generator: torch.Generator) -> torch.Tensor:
    """`size` random points (rows) of a geometric space, as the reference draws them (§1.2).

    Flat spaces: uniform in [0, 10)^k. Spheres: normalised standard Gaussian vectors, i.e.
    uniform on the unit sphere (the radius enters the distance, not the points).
    """
    if space in FLAT_DIMENSIONS:
        return SIDE * torch.rand(size, FLAT_DIMENSIONS[space], generator=generator)
    if space in SPHERE_DIMENSIONS:
        return F.normalize(torch.randn(size, SPHERE_DIMENSIONS[space], generator=generator), dim=1)
    raise ValueError(f"space {space!r} has no points; geometric spaces: {', '.join(GEOMETRIC_SPACES)}")


def canonical_points(space: Space, points: torch.Tensor) -> torch.Tensor:
    """The same points of the space, in its fundamental domain.

    Torus: every coordinate mod 10. Klein bottle: crossing the vertical edge is a glide
    (x, y) ~ (x + 10, 10 − y), so x is reduced mod 10 and y is reflected once per odd number of
    cells crossed before being reduced mod 10 (reducing both coordinates mod 10 independently
    would move the point). Spheres: unit vectors. Used for trainable embeddings after each step.
    """
    if space in ("torus", "torus6"):
        return torch.remainder(points, SIDE)
    if space == "klein":
        cells = torch.floor(points[:, 0] / SIDE)
        x = points[:, 0] - SIDE * cells
        glided = torch.remainder(cells, 2) == 1
        y = torch.remainder(torch.where(glided, -points[:, 1], points[:, 1]), SIDE)
        return torch.stack([x, y], dim=1)
    if space in SPHERE_DIMENSIONS:
        return F.normalize(points, dim=1)
    raise ValueError(f"space {space!r} has no points; geometric spaces: {', '.join(GEOMETRIC_SPACES)}")


def _root(squared: torch.Tensor) -> torch.Tensor:
    """sqrt with a zero (not infinite) derivative where the distance is exactly zero."""
    positive = squared > _TINY_SQUARED_DISTANCE
    return torch.where(positive, squared.clamp_min(_TINY_SQUARED_DISTANCE).sqrt(), 0.0)


def _flat_torus_distances(points: torch.Tensor) -> torch.Tensor:
    # Per coordinate the shorter way round: min(|Δ| mod 10, 10 − |Δ| mod 10). Accumulated one
    # coordinate at a time so that no (N, N, k) tensor is built (N = 4096 in navigation).
    squared = torch.zeros(len(points), len(points), dtype=points.dtype, device=points.device)
    for coordinate in points.unbind(dim=1):
        gap = torch.remainder(coordinate[:, None] - coordinate[None, :], SIDE)
        squared = squared + torch.minimum(gap, SIDE - gap).square()
    return _root(squared)


def _klein_distances(points: torch.Tensor) -> torch.Tensor:
    # Minimum Euclidean distance from p_i to the 9 images of p_j in the 3 × 3 block of cells
    # around the fundamental square: (x, y + 10m) and, across the vertical edge, the glide
    # images (x ± 10, 10 − y + 10m), m ∈ {−1, 0, 1} (§1.2).
    x, y = canonical_points("klein", points).unbind(dim=1)
    nearest: torch.Tensor | None = None
    for horizontal in (-1, 0, 1):
        image_x = x + SIDE * horizontal
        image_y = y if horizontal == 0 else SIDE - y
        across = (x[:, None] - image_x[None, :]).square()
        for vertical in (-1, 0, 1):
            squared = across + (y[:, None] - (image_y + SIDE * vertical)[None, :]).square()
            nearest = squared if nearest is None else torch.minimum(nearest, squared)
    assert nearest is not None
    return _root(nearest)


def _sphere_distances(space: Space, points: torch.Tensor) -> torch.Tensor:
    # Great-circle distance radius · arccos⟨p_i, p_j⟩. The points are normalised here so that
    # the distance is defined for any representative; the diagonal is exactly zero.
    unit = F.normalize(points, dim=1)
    cosines = (unit @ unit.T).clamp(-1.0 + _ARCCOS_MARGIN, 1.0 - _ARCCOS_MARGIN)
    distances = SPHERE_RADIUS[space] * torch.arccos(cosines)
    diagonal = torch.eye(len(points), dtype=torch.bool, device=points.device)
    return distances.masked_fill(diagonal, 0.0)


def distance_matrix(space: Space, points: torch.Tensor) -> torch.Tensor:
    """D_ij = d(p_i, p_j) for the points (rows) of a geometric space; row i is neuron i.

    Symmetric with a zero diagonal, and differentiable in `points`. (The reference code's
    torus distances read the coordinates with a row-major `view` instead of a transpose; for
    i.i.d. points that is the same distribution, and this is the clean version, §1.2.)
    """
    if space in ("torus", "torus6"):
        return _flat_torus_distances(points)
    if space == "klein":
        return _klein_distances(points)
    if space in SPHERE_DIMENSIONS:
        return _sphere_distances(space, points)
    raise ValueError(f"space {space!r} has no points; geometric spaces: {', '.join(GEOMETRIC_SPACES)}")


INHIBITORS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    # Difference of Gaussians: 0 at d = 0, peak 81.14 at d ≈ 0.888, ≈ 0 beyond d ≈ 5. Meant to
    # be inverted ("I implemented the DoG backwards"): then a cheap annulus around each neuron.
    "dog": lambda d: 100.0 * (torch.exp(-d.square() / 5.0) - torch.exp(-4.0 * d.square())),
    # "Diffusion" in the paper's tables: grows with the squared distance (navigation: not inverted).
    "square": lambda d: d.square(),
    "ripple": lambda d: 50.0 + 50.0 * torch.cos(2.0 * d),
    "gauss": lambda d: 100.0 * torch.exp(-d.square() / 3.0),
    "identity": lambda d: d,
}
"""The inhibitor f of §1.3, applied elementwise to the distance matrix."""


def coefficients_from_distances(
    distances: torch.Tensor,
    inhibitor: Inhibitor,
    invert: bool,
    permutation: torch.Tensor | None = None,
    scale: float = 1.0,
) -> torch.Tensor:
    """R = scale · invert(permute(f(D))): the recipe of §1.1 in the reference code's order.

    `permutation` indexes the flattened N² entries (a uniform shuffle keeps the values and
    destroys the geometry); `invert` is R ← max(R) − R with the maximum over the whole matrix.
    """
    coefficients = INHIBITORS[inhibitor](distances)
    if permutation is not None:
        coefficients = coefficients.reshape(-1)[permutation].reshape(coefficients.shape)
    if invert:
        coefficients = coefficients.max() - coefficients
    return scale * coefficients


def coefficient_matrix(
    space: Space,
    size: int,
    generator: torch.Generator,
    inhibitor: Inhibitor = "dog",
    invert: bool = True,
    permute: bool = False,
    scale: float = 1.0,
) -> torch.Tensor:
    """The N × N coefficient matrix R of one recurrent layer (N = `size`).

    Geometric spaces draw their points, then (with `permute`) the permutation, from
    `generator`. `standard` is R = 1 and `none` is R = 0 before inversion: neither has a
    distance, so the inhibitor does not apply and there is nothing to permute. Inverting
    `standard` gives R = 0: the reference's navigation "L1" control is no penalty at all
    (§5.1.2); a real L1 is `standard` without inversion.
    """
    if space in GEOMETRIC_SPACES:
        distances = distance_matrix(space, sample_points(space, size, generator))
        permutation = torch.randperm(size * size, generator=generator) if permute else None
        return coefficients_from_distances(distances, inhibitor, invert, permutation, scale)
    if space in ("standard", "none"):
        constant = torch.full((size, size), 1.0 if space == "standard" else 0.0)
        return scale * (constant.max() - constant if invert else constant)
    raise ValueError(f"unknown moduli space {space!r}")


def mean_coefficient(
    space: Space = "torus", size: int = 650, inhibitor: Inhibitor = "dog", invert: bool = True, seed: int = 0
) -> float:
    """Mean of R for one draw: the `scale` of a magnitude-matched constant control (L1*).

    With `space: standard, invert: false, scale: mean_coefficient()` every weight carries the
    average coefficient of the inverted torus DoG (≈ 66.3 at any N, §1.4), so the control
    differs from the moduli penalty by its geometry only. (The reference's own `mean` option
    used the non-inverted DoG mean, ≈ 14.9, about 4.5× weaker.)
    """
    generator = torch.Generator().manual_seed(seed)
    return float(coefficient_matrix(space, size, generator, inhibitor, invert).mean())


class ModuliRegularizer(Regularizer):
    """λ · [Σ_l mean(R_l ⊙ |W_hh^l|^k) + (with `l1_other`) plain mean |W| of the other weights].

    One independent embedding (hence R_l) per recurrent matrix `W_hh` (per layer, and per
    direction of a bidirectional layer), as the NLP reference does per layer. For
    LSTM and GRU the N × N matrix weighs every gate block of W_hh alike (the reference stacks
    it 4× or 3×); it is broadcast over a (gates, N, N) view, never tiled. The mean runs over
    all gates · N² entries, so λ means the same for every cell type.

    `l1_other` adds, inside the λ bracket, the unweighted mean |W| of each matrix named in
    `other` (every `weight_ih_l`, the embedding or initial-state encoder, the readout): the NLP
    reference's extra L1, present even in its "no reg" runs (§1.5).

    Fixed coefficients are non-persistent buffers: they are rebuilt from the trial seed, so
    checkpoints stay small. With `trainable_embedding` the points are parameters (one
    (N, k) tensor per layer, `points.<layer>` in the state dict) and R is recomputed from them
    at every penalty, so gradients reach the points; `after_step` puts them back on the space.

    The penalty reads the parameter tensors only, never the recurrence: it costs a few passes
    over the weights per step.
    """

    def __init__(
        self,
        recurrent: Sequence[tuple[str, int]],
        generator: torch.Generator,
        *,
        space: Space,
        inhibitor: Inhibitor = "dog",
        invert: bool = True,
        permute: bool = False,
        coefficient: float = 0.1,
        power: Literal[1, 2] = 1,
        l1_other: bool = False,
        trainable_embedding: bool = False,
        scale: float = 1.0,
        other: Sequence[str] = (),
    ) -> None:
        super().__init__()
        if trainable_embedding and (space not in GEOMETRIC_SPACES or permute):
            raise ValueError("a trainable embedding needs a geometric space and no permutation")
        # (parameter name, hidden units) of every recurrent matrix, in the model's order; the
        # parameters are looked up by name at each penalty, so a rebuilt model is read correctly.
        self.recurrent = [name for name, _ in recurrent]
        self.hidden_sizes = [size for _, size in recurrent]
        self.other = list(other)
        self.space, self.inhibitor, self.invert, self.scale = space, inhibitor, invert, scale
        self.coefficient, self.power, self.l1_other = coefficient, power, l1_other
        self.trainable_embedding = trainable_embedding
        self.points = nn.ParameterList()
        for layer, hidden_size in enumerate(self.hidden_sizes):
            if trainable_embedding:
                self.points.append(nn.Parameter(sample_points(space, hidden_size, generator)))
            else:
                matrix = coefficient_matrix(space, hidden_size, generator, inhibitor, invert, permute, scale)
                self.register_buffer(f"coefficients_l{layer}", matrix, persistent=False)

    def coefficients(self, layer: int) -> torch.Tensor:
        """R of recurrent layer `layer` (N × N), from the current points when they are learnt."""
        if self.trainable_embedding:
            distances = distance_matrix(self.space, self.points[layer])
            return coefficients_from_distances(distances, self.inhibitor, self.invert, scale=self.scale)
        return getattr(self, f"coefficients_l{layer}")

    def penalty(self, model: nn.Module) -> torch.Tensor:
        total = sum(
            self._weighted_mean(model.get_parameter(name), self.coefficients(layer))
            for layer, name in enumerate(self.recurrent)
        )
        if self.l1_other:
            total = total + sum(model.get_parameter(name).abs().mean() for name in self.other)
        return self.coefficient * total

    def _weighted_mean(self, weight: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
        hidden_size = weight.shape[1]
        magnitude = weight.abs() if self.power == 1 else weight.square()
        gates = weight.shape[0] // hidden_size
        weighted = magnitude.view(gates, hidden_size, hidden_size) * coefficients
        # sum / numel is the mean; its backward is a free expand, mean's builds a filled tensor.
        return weighted.sum() / weight.numel()

    @torch.no_grad()
    def after_step(self) -> None:
        """Learnt points back onto the space: mod 10 (glide-aware on the Klein bottle), unit norm."""
        for points in self.points:
            points.copy_(canonical_points(self.space, points))
