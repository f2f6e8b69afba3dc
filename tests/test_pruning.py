import pytest
import torch

from rnnprune.models import RecurrentNet
from rnnprune.pruning import registry
from rnnprune.pruning.base import NoParams, PrunableWeight, nested
from rnnprune.pruning.magnitude import prune_global_magnitude, prune_layerwise_magnitude
from rnnprune.pruning.random import RandomParams, prune_random
from rnnprune.pruning.selection import lowest_k_mask


def _weight(name: str, values: torch.Tensor, mask: torch.Tensor | None = None) -> PrunableWeight:
    return PrunableWeight(
        name,
        0,
        "hh",
        ("h",),
        values,
        torch.ones_like(values, dtype=torch.bool) if mask is None else mask,
    )


def test_global_magnitude_prunes_exactly_the_k_smallest() -> None:
    generator = torch.Generator().manual_seed(0)
    weights = [
        _weight("a", torch.randn(7, 5, generator=generator)),
        _weight("b", torch.randn(3, 11, generator=generator)),
    ]
    for target in (0.0, 0.1, 0.33, 0.5, 0.9, 0.99):
        masks = prune_global_magnitude(weights, target, NoParams(), generator)
        values = torch.cat([w.weight.abs().reshape(-1) for w in weights])
        kept = torch.cat([masks[w.name].reshape(-1) for w in weights])
        k = round(target * values.numel())
        assert int((~kept).sum()) == k
        if 0 < k < values.numel():
            assert values[~kept].max() <= values[kept].min()


def test_ties_are_broken_by_position() -> None:
    scores = torch.ones(10)
    assert lowest_k_mask(scores, 4).tolist() == [False] * 4 + [True] * 6
    weights = [_weight("a", torch.full((2, 3), 0.5)), _weight("b", torch.full((2, 3), 0.5))]
    first = prune_global_magnitude(weights, 0.5, NoParams(), torch.Generator())
    again = prune_global_magnitude(weights, 0.5, NoParams(), torch.Generator())
    assert torch.equal(first["a"], again["a"]) and not first["a"].any() and first["b"].all()


def test_layerwise_and_global_differ_as_they_should() -> None:
    small = _weight("small", torch.linspace(0.01, 0.1, 20).reshape(4, 5))
    large = _weight("large", torch.linspace(1.0, 10.0, 20).reshape(4, 5))
    global_masks = prune_global_magnitude([small, large], 0.5, NoParams(), torch.Generator())
    layer_masks = prune_layerwise_magnitude([small, large], 0.5, NoParams(), torch.Generator())
    # One threshold over the pool removes the whole small-scale tensor first...
    assert not global_masks["small"].any() and global_masks["large"].all()
    # ...while layerwise takes half of each, the smallest half of each.
    for name in ("small", "large"):
        assert int((~layer_masks[name]).sum()) == 10
        assert layer_masks[name].reshape(-1).tolist() == [False] * 10 + [True] * 10


def test_already_pruned_weights_count_towards_the_target() -> None:
    values = torch.arange(1.0, 11.0).reshape(2, 5)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 4] = False  # the largest weight was pruned earlier
    weight = _weight("w", values * mask, mask)
    masks = nested(prune_global_magnitude([weight], 0.3, NoParams(), torch.Generator()), [weight])
    assert int((~masks["w"]).sum()) == 3
    assert not masks["w"][1, 4] and not masks["w"][0, 0] and not masks["w"][0, 1]


@pytest.mark.parametrize("layerwise", [False, True])
def test_random_respects_the_target_and_the_seed(layerwise: bool) -> None:
    weights = [_weight("a", torch.randn(16, 8)), _weight("b", torch.randn(8, 8))]
    params = RandomParams(layerwise=layerwise)
    for target in (0.25, 0.6, 0.95):
        masks = prune_random(weights, target, params, torch.Generator().manual_seed(3))
        pruned = sum(int((~m).sum()) for m in masks.values())
        assert pruned == round(target * 192) or layerwise
        if layerwise:
            for w in weights:
                assert int((~masks[w.name]).sum()) == round(target * w.numel)
        repeat = prune_random(weights, target, params, torch.Generator().manual_seed(3))
        other = prune_random(weights, target, params, torch.Generator().manual_seed(4))
        assert all(torch.equal(masks[n], repeat[n]) for n in masks)
        assert any(not torch.equal(masks[n], other[n]) for n in masks)


def test_random_ignores_magnitudes() -> None:
    # Magnitude would prune the small tensor entirely; random spreads over both.
    weights = [
        _weight("small", torch.full((10, 10), 1e-3)),
        _weight("large", torch.full((10, 10), 1.0)),
    ]
    masks = prune_random(weights, 0.5, RandomParams(), torch.Generator().manual_seed(0))
    assert 20 < int((~masks["small"]).sum()) < 80


def test_every_registered_method_returns_boolean_masks_for_the_whole_scope() -> None:
    model = RecurrentNet("lstm", input_size=4, hidden_size=8, num_layers=2, num_classes=3)
    weights = model.prunable_weights(("ih", "hh"))
    for name, method in registry.registered_methods.items():
        masks = method(weights, 0.5, method.params(), torch.Generator().manual_seed(0)).masks
        assert set(masks) == {w.name for w in weights}, name
        for w in weights:
            assert masks[w.name].dtype == torch.bool and masks[w.name].shape == w.weight.shape


def test_unknown_method_names_the_registered_ones() -> None:
    with pytest.raises(KeyError, match="global_magnitude"):
        registry.get("nope")
