import copy
import io

import pytest
import torch
from torch.nn import functional as F

from rnnprune.models import RecurrentNet
from rnnprune.pruning.base import NoParams, nested
from rnnprune.pruning.magnitude import prune_global_magnitude


def _pruned_model(cell: str, sparsity: float = 0.7) -> RecurrentNet:
    torch.manual_seed(0)
    model = RecurrentNet(cell, input_size=5, hidden_size=12, num_layers=2, num_classes=3)
    weights = model.prunable_weights(("ih", "hh", "readout"))
    masks = prune_global_magnitude(weights, sparsity, NoParams(), torch.Generator())
    model.set_masks(nested(masks, weights))
    return model


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("optimizer_name", ["adam", "sgd"])
def test_masked_weights_stay_zero_through_many_optimizer_steps(cell: str, optimizer_name: str) -> None:
    model = _pruned_model(cell)
    optimizer = (
        torch.optim.Adam(model.parameters(), lr=0.05, weight_decay=1e-3)
        if optimizer_name == "adam"
        else torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    )
    masks = {name: mask.clone() for name, mask in model.masks().items()}
    generator = torch.Generator().manual_seed(1)
    for _ in range(200):
        inputs = torch.randn(8, 6, 5, generator=generator)
        targets = torch.randint(0, 3, (8,), generator=generator)
        loss = F.cross_entropy(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.apply_masks(optimizer)
    parameters = dict(model.named_parameters())
    for name, mask in masks.items():
        assert (~mask).sum() > 0, name
        assert torch.all(parameters[name][~mask] == 0), name
        # The surviving weights did train.
        assert torch.count_nonzero(parameters[name][mask]) == mask.sum(), name
        for state in optimizer.state[parameters[name]].values():
            if isinstance(state, torch.Tensor) and state.shape == mask.shape:
                assert torch.all(state[~mask] == 0), name


def test_masks_travel_in_the_state_dict() -> None:
    model = _pruned_model("lstm")
    state = model.state_dict()
    assert "rnn.weight_hh_l1_mask" in state and "readout.weight_mask" in state
    fresh = RecurrentNet("lstm", input_size=5, hidden_size=12, num_layers=2, num_classes=3)
    fresh.load_state_dict(state)
    for name, mask in model.masks().items():
        assert torch.equal(fresh.masks()[name], mask)
    inputs = torch.randn(4, 6, 5)
    model.eval()
    fresh.eval()
    assert torch.allclose(model(inputs), fresh(inputs))


def test_a_saved_pruned_model_is_no_larger_than_the_unpruned_one_and_keeps_its_masks() -> None:
    """The masks' multipliers (weight-sized, in the weights' dtype) are a cache: a file holds the
    weights and the bool masks only, and the loaded model (or a copy) rebuilds them."""
    unpruned = RecurrentNet("lstm", input_size=5, hidden_size=12, num_layers=2, num_classes=3)
    model = _pruned_model("lstm")

    def saved(module: torch.nn.Module) -> bytes:
        buffer = io.BytesIO()
        torch.save(module, buffer)
        return buffer.getvalue()

    assert len(saved(model)) <= len(saved(unpruned))
    for loaded in (torch.load(io.BytesIO(saved(model)), weights_only=False), copy.deepcopy(model)):
        optimizer = torch.optim.SGD(loaded.parameters(), lr=0.5)
        loss = F.cross_entropy(loaded(torch.randn(8, 6, 5)), torch.randint(0, 3, (8,)))
        loss.backward()
        optimizer.step()
        loaded.apply_masks(optimizer)
        parameters = dict(loaded.named_parameters())
        for name, mask in model.masks().items():
            assert torch.all(parameters[name][~mask] == 0), name


def test_set_masks_zeroes_weights_and_nesting_never_regrows() -> None:
    model = _pruned_model("gru", sparsity=0.5)
    weights = model.prunable_weights(("ih", "hh", "readout"))
    everything_kept = {w.name: torch.ones_like(w.mask) for w in weights}
    model.set_masks(nested(everything_kept, weights))
    assert sum(int((~m).sum()) for m in model.masks().values()) > 0
    for weight in model.prunable_weights(("ih", "hh", "readout")):
        assert torch.all(weight.weight[~weight.mask] == 0)
