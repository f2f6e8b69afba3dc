"""Moduli regularization: the geometry, the coefficient recipe, the penalty and the method (§5.5)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from rnnprune.config import validate_config
from rnnprune.data.base import Architecture
from rnnprune.models import RecurrentNet
from rnnprune.moduli import (
    GEOMETRIC_SPACES,
    INHIBITORS,
    ModuliRegularizer,
    canonical_points,
    coefficient_matrix,
    coefficients_from_distances,
    distance_matrix,
    mean_coefficient,
    sample_points,
)
from rnnprune.pruning import registry
from rnnprune.pruning.moduli import MODULI, ModuliParams
from rnnprune.training.runner import run_trial


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _grid(step: float) -> torch.Tensor:
    ticks = torch.arange(0.0, 10.0, step)
    return torch.cartesian_prod(ticks, ticks)


@pytest.mark.parametrize("space", GEOMETRIC_SPACES)
def test_distances_are_symmetric_with_zero_diagonal(space: str) -> None:
    distances = distance_matrix(space, sample_points(space, 60, _generator()))
    assert torch.allclose(distances, distances.T, atol=1e-5)
    assert torch.equal(distances.diagonal(), torch.zeros(60))
    assert bool((distances >= 0).all())


def test_torus_distance_wraps_and_peaks_at_five_root_two() -> None:
    corners = torch.tensor([[0.0, 0.0], [5.0, 5.0], [9.5, 0.0], [0.0, 9.0]])
    distances = distance_matrix("torus", corners)
    assert distances[0, 1] == pytest.approx(5 * math.sqrt(2), abs=1e-5)
    assert distances[0, 2] == pytest.approx(0.5, abs=1e-5)  # the short way round
    assert distances[2, 3] == pytest.approx(math.sqrt(0.5**2 + 1.0), abs=1e-5)
    grid_distances = distance_matrix("torus", _grid(0.25))
    assert float(grid_distances.max()) == pytest.approx(5 * math.sqrt(2), abs=1e-5)


def test_klein_glide_identifies_points_across_the_vertical_edge() -> None:
    points = sample_points("klein", 20, _generator())
    x, y = points.unbind(dim=1)
    # (x + 10, 10 − y) is the same point of the Klein bottle; also seen from just inside the edge.
    glided = torch.stack([x + 10.0, 10.0 - y], dim=1)
    both = torch.cat([points, glided])
    distances = distance_matrix("klein", both)
    assert torch.allclose(distances[:20, 20:].diagonal(), torch.zeros(20), atol=1e-5)
    edge = distance_matrix("klein", torch.tensor([[0.1, 2.0], [9.9, 8.0], [9.9, 2.0]]))
    assert edge[0, 1] == pytest.approx(0.2, abs=1e-5)  # glide neighbours
    # Not neighbours as on the torus (0.2): the nearest image is the glide one at (−0.1, −2).
    assert edge[0, 2] == pytest.approx(math.sqrt(0.2**2 + 4.0**2), abs=1e-4)


def test_klein_equals_euclidean_for_close_interior_points_and_stays_below_the_torus_bound() -> None:
    centres = 3.0 + 4.0 * torch.rand(30, 2, generator=_generator(1))
    nearby = centres + 0.5 * (torch.rand(30, 2, generator=_generator(2)) - 0.5)
    klein = distance_matrix("klein", torch.cat([centres, nearby]))[:30, 30:].diagonal()
    assert torch.allclose(klein, (centres - nearby).norm(dim=1), atol=1e-5)
    assert float(distance_matrix("klein", _grid(0.25)).max()) <= 5 * math.sqrt(2) + 1e-5


def test_dog_peaks_at_81_14_near_0_888() -> None:
    distances = torch.linspace(0.0, 3.0, 30001)
    values = INHIBITORS["dog"](distances)
    assert float(values.max()) == pytest.approx(81.14, abs=0.01)
    assert float(distances[values.argmax()]) == pytest.approx(0.888, abs=0.002)
    assert INHIBITORS["dog"](torch.tensor([0.0, 2.0, 3.0, 5.0])).tolist() == pytest.approx(
        [0.0, 44.93, 16.53, 0.674], abs=0.01
    )


def test_inverted_standard_is_the_reference_zero_l1_control() -> None:
    """The navigation reference's "L1" run passes --invert True with `standard`: R = max(1) − 1 = 0."""
    assert not coefficient_matrix("standard", 16, _generator(), invert=True).any()
    assert torch.equal(coefficient_matrix("standard", 16, _generator(), invert=False), torch.ones(16, 16))
    assert not coefficient_matrix("none", 16, _generator(), invert=False).any()
    matched = coefficient_matrix("standard", 16, _generator(), invert=False, scale=mean_coefficient(size=200))
    assert float(matched[3, 5]) == pytest.approx(66.3, abs=0.6)


def test_permute_keeps_the_multiset_of_coefficients_and_destroys_symmetry() -> None:
    plain = coefficient_matrix("torus", 40, _generator(3), invert=False)
    shuffled = coefficient_matrix("torus", 40, _generator(3), invert=False, permute=True)
    assert torch.equal(plain.reshape(-1).sort().values, shuffled.reshape(-1).sort().values)
    assert not torch.equal(plain, shuffled) and not torch.allclose(shuffled, shuffled.T)
    # Order f, permute, invert: inverting after the shuffle keeps the multiset of max − R too.
    inverted = coefficient_matrix("torus", 40, _generator(3), permute=True)
    assert torch.allclose(inverted, shuffled.max() - shuffled)


# §1.4 (DoG, inverted; N = 650): mean D, mean R, frac(R < 10), frac(R < 40), frac(R > 70).
REFERENCE_STATISTICS = {
    "torus": (3.8, 66.3, 0.041, 0.135, 0.656),
    "klein": (3.8, 66.3, 0.041, 0.135, 0.656),
    "circle": (7.9, 71.4, 0.043, 0.110, 0.801),
    "sphere": (7.8, 76.5, 0.013, 0.043, 0.894),
    "torus6": (6.9, 79.5, 0.000, 0.001, 0.992),
}


@pytest.mark.parametrize("space", REFERENCE_STATISTICS)
def test_coefficient_statistics_match_the_specification_table(space: str) -> None:
    points = sample_points(space, 650, _generator())
    distances = distance_matrix(space, points)
    coefficients = coefficients_from_distances(distances, "dog", invert=True)
    measured = (
        float(distances.mean()),
        float(coefficients.mean()),
        *(
            float(fraction.float().mean())
            for fraction in (coefficients < 10, coefficients < 40, coefficients > 70)
        ),
    )
    mean_distance, mean_coefficient_, *fractions = REFERENCE_STATISTICS[space]
    assert measured[0] == pytest.approx(mean_distance, abs=0.15)
    # The 6-torus's max(R) is set by its few closest pairs, so its mean R varies by ±1.5 per draw.
    assert measured[1] == pytest.approx(mean_coefficient_, abs=2.0 if space == "torus6" else 0.5)
    assert measured[2:] == pytest.approx(fractions, abs=0.01)


def test_the_seed_fixes_the_coefficients() -> None:
    for space in ("torus", "sphere"):
        first = coefficient_matrix(space, 32, _generator(7), permute=True)
        assert torch.equal(first, coefficient_matrix(space, 32, _generator(7), permute=True))
        assert not torch.equal(first, coefficient_matrix(space, 32, _generator(8), permute=True))


def _build(model: RecurrentNet, seed: int = 0, **params: object) -> ModuliRegularizer:
    regularizer = MODULI.regularizer.build(ModuliParams(**params), model, _generator(seed))
    assert isinstance(regularizer, ModuliRegularizer)
    return regularizer


def test_penalty_tiles_r_over_lstm_gates_and_reaches_w_hh() -> None:
    torch.manual_seed(0)
    model = RecurrentNet("lstm", 3, 5, 2, 2)
    regularizer = _build(model, coefficient=0.3)
    penalty = regularizer.penalty(model)
    expected = 0.0
    for layer in range(2):
        weight = getattr(model.rnn, f"weight_hh_l{layer}").detach()
        coefficients = regularizer.coefficients(layer)
        assert not torch.equal(coefficients, regularizer.coefficients(1 - layer))  # independent embeddings
        expected += sum(
            float(coefficients[i, j] * weight[gate * 5 + i, j].abs())
            for gate in range(4)
            for i in range(5)
            for j in range(5)
        ) / (4 * 5 * 5)
    assert penalty.item() == pytest.approx(0.3 * expected, rel=1e-5)
    penalty.backward()
    weight = model.rnn.weight_hh_l0
    tiled = regularizer.coefficients(0).repeat(4, 1)
    assert torch.allclose(weight.grad, 0.3 * tiled * weight.sign() / (4 * 5 * 5))
    assert model.rnn.weight_ih_l0.grad is None and model.readout.weight.grad is None


def test_power_two_weighs_squares() -> None:
    model = RecurrentNet("rnn_tanh", 2, 6, 1, 2)
    coefficients = _build(model).coefficients(0)
    expected = 0.1 * (coefficients * model.rnn.weight_hh_l0.square()).mean()
    assert _build(model, power=2).penalty(model).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("front", ["embedding", "encoder"])
def test_l1_other_adds_the_plain_mean_of_the_other_weights(front: str) -> None:
    architecture = (
        Architecture(vocab_size=11, readout="all")
        if front == "embedding"
        else Architecture(initial_code=nn.Identity(), initial_code_size=3, readout="all")
    )
    model = RecurrentNet("gru", 4, 6, 2, 5, architecture=architecture)
    plain, with_l1 = _build(model), _build(model, l1_other=True)
    others = [
        model.rnn.weight_ih_l0,
        model.rnn.weight_ih_l1,
        getattr(model, front).weight,
        model.readout.weight,
    ]
    extra = 0.1 * sum(weight.abs().mean().item() for weight in others)
    assert (with_l1.penalty(model) - plain.penalty(model)).item() == pytest.approx(extra, rel=1e-5)
    # `none` with the extra L1 is the NLP reference's "no reg": the other weights only.
    assert _build(model, space="none", l1_other=True).penalty(model).item() == pytest.approx(extra, rel=1e-5)


@pytest.mark.parametrize("space", ["torus", "klein", "sphere", "s3", "circle", "torus6"])
def test_trainable_embedding_learns_and_stays_on_its_space(space: str) -> None:
    model = RecurrentNet("rnn_relu", 2, 8, 1, 2)
    regularizer = _build(model, space=space, trainable_embedding=True)
    assert [name for name, _ in regularizer.named_parameters()] == ["points.0"]
    regularizer.penalty(model).backward()
    points = regularizer.points[0]
    assert points.grad is not None and bool(torch.isfinite(points.grad).all()) and bool(points.grad.any())
    flat = space in ("torus", "klein", "torus6")
    before = distance_matrix(space, points.detach())
    with torch.no_grad():  # a step that leaves the domain: out of the square, off the sphere
        if flat:
            points.add_(torch.linspace(-13.0, 17.0, points.numel()).reshape(points.shape))
        else:
            points.mul_(3.0)
        moved = distance_matrix(space, points.detach())
    regularizer.after_step()
    if flat:
        assert bool(((points >= 0) & (points < 10)).all())
        # Wrapping (glide-aware on the Klein bottle) keeps every point where it is.
        assert torch.allclose(distance_matrix(space, points.detach()), moved, atol=1e-4)
        assert not torch.allclose(moved, before)
    else:
        assert torch.allclose(points.norm(dim=1), torch.ones(8), atol=1e-6)


def test_klein_canonical_points_reflect_once_per_glide() -> None:
    points = torch.tensor([[12.0, 3.0], [-1.0, 3.0], [23.0, 3.0], [4.0, -2.0]])
    expected = torch.tensor([[2.0, 7.0], [9.0, 7.0], [3.0, 3.0], [4.0, 8.0]])
    assert torch.allclose(canonical_points("klein", points), expected)


def test_fixed_coefficients_stay_out_of_the_state_dict() -> None:
    model = RecurrentNet("lstm", 2, 6, 1, 2)
    regularizer = _build(model)
    assert regularizer.state_dict() == {} and list(regularizer.parameters()) == []
    assert torch.equal(regularizer.coefficients(0), _build(model).coefficients(0))
    assert regularizer.to(torch.float64).coefficients(0).dtype == torch.float64  # buffers move with it


def test_active_exactly_when_the_penalty_can_be_nonzero() -> None:
    active = MODULI.regularizes
    assert active(ModuliParams())
    assert not active(ModuliParams(space="none"))
    assert not active(ModuliParams(coefficient=0.0))
    assert not active(ModuliParams(space="standard"))  # inverted: R = 0
    assert active(ModuliParams(space="standard", invert=False))
    assert active(ModuliParams(space="none", l1_other=True))
    assert not active(ModuliParams(space="none", l1_other=True, coefficient=0.0))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"space": "standard", "trainable_embedding": True}, "trainable_embedding"),
        ({"space": "none", "trainable_embedding": True}, "trainable_embedding"),
        ({"permute": True, "trainable_embedding": True}, "trainable_embedding"),
        ({"space": "standard", "permute": True}, "permute"),
        ({"power": 3}, "power"),
        ({"scale": 0.0}, "scale"),
        ({"invert": "maybe"}, "invert"),
    ],
)
def test_meaningless_parameters_are_rejected_by_name(params: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        ModuliParams(**params)


def test_masks_are_global_magnitude_nested_and_hit_the_target() -> None:
    assert registry.get("moduli") is MODULI
    torch.manual_seed(0)
    model = RecurrentNet("lstm", 3, 8, 1, 2)
    total = sum(weight.numel for weight in model.prunable_weights())
    previous = model.masks()
    for target in (0.3, 0.6, 0.9):
        result = MODULI(model.prunable_weights(), target, ModuliParams(), _generator())
        pruned = sum(int((~mask).sum()) for mask in result.masks.values())
        assert pruned == round(target * total)
        assert all(bool((~result.masks[name] | previous[name]).all()) for name in result.masks)
        model.set_masks(result.masks)
        previous = model.masks()


def test_a_trial_trains_prunes_and_draws_a_ticket_under_the_penalty(
    trial_dict: dict[str, Any], tmp_path: Path
) -> None:
    trial_dict["pruning"].update(
        method="moduli",
        params={"space": "klein", "trainable_embedding": True},
        target_sparsity=0.6,
        lottery=True,
        schedule={"kind": "linear", "prune_epochs": 2, "finetune_epochs": 0},
    )
    trial_dict["training"]["epochs"] = 1
    metrics = run_trial(validate_config(trial_dict), tmp_path / "out").metrics
    assert metrics["sparsity"] == pytest.approx(0.6, abs=1e-3)
    assert all(epoch["train_penalty"] > 0 for epoch in metrics["history"])
