"""Pruning masks on any module's recurrent and linear weights.

A masked model keeps a boolean buffer beside every maskable matrix (`weight_hh_l0_mask` beside
`weight_hh_l0`), so masks travel in the state dict. They are applied in place to the plain
`nn.Parameter`s (and to the optimizer's state) after every optimizer step, which keeps cuDNN's
packed flat weights of `nn.LSTM`/`nn.GRU`/`nn.RNN`; `torch.nn.utils.prune` would re-parametrise
the weights and break that fast path (pytorch#33618).

The built-in network lists its matrices itself (`RecurrentNet`); a user's module gets them by
discovery (`discover_weights`), which walks the module tree and knows the weight layout of
PyTorch's recurrent layers (every layer, both directions, gate blocks) and cells, of
`nn.Linear` and of `nn.Embedding`. Parameters of other modules (a custom cell's own matrices,
a convolution) are left out and named, never guessed at. `with_masks` turns a user's module
into a masked one in place, the way `torch.nn.utils.parametrize` does: its class becomes a
subclass that adds the mask methods, so its state-dict keys and forward stay its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rnnprune.errors import ConfigError
from rnnprune.weights import PrunableWeight, WeightKind

MASK_SUFFIX = "_mask"

# PyTorch's row blocks of a recurrent matrix, by `nn.RNNBase.mode` and by cell class.
GATES_BY_MODE: dict[str, tuple[str, ...]] = {
    "LSTM": ("i", "f", "g", "o"),
    "GRU": ("r", "z", "n"),
    "RNN_TANH": ("h",),
    "RNN_RELU": ("h",),
}
_CELL_GATES: dict[type[nn.Module], tuple[str, ...]] = {
    nn.LSTMCell: GATES_BY_MODE["LSTM"],
    nn.GRUCell: GATES_BY_MODE["GRU"],
    nn.RNNCell: GATES_BY_MODE["RNN_TANH"],
}


@dataclass(frozen=True)
class WeightSlot:
    """Where one maskable matrix lives: its full name, owning module and attribute."""

    name: str
    owner: nn.Module
    attribute: str
    layer: int
    kind: WeightKind
    gates: tuple[str, ...]
    module_path: str = ""
    direction: int = 0


@dataclass(frozen=True)
class Discovery:
    """The maskable matrices of a module, and what was left out and why."""

    slots: list[WeightSlot]
    left_out: list[str]


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def discover_weights(model: nn.Module, readout: str | None = None) -> Discovery:
    """Find every matrix rnnprune can mask in `model`, by module path and kind.

    Recurrent layers (`nn.LSTM`, `nn.GRU`, `nn.RNN`, any number of layers, bidirectional) give
    `ih` and `hh` matrices numbered by a layer count over the whole model; their cells
    (`nn.LSTMCell`, ...) give one layer each. `readout` is the module path of the linear layer
    that produces the outputs (default: the last `nn.Linear` registered); other `nn.Linear`
    layers are `linear`, embeddings `encoder`. Raises ConfigError when `readout` names no
    linear layer or the model has no recurrent layer at all.
    """
    modules = dict(model.named_modules())
    linears = [path for path, module in modules.items() if isinstance(module, nn.Linear)]
    if readout is None:
        readout = linears[-1] if linears else None
    elif readout not in linears:
        raise ConfigError(
            f"model readout {readout!r} is not an nn.Linear of the model; its linear layers are "
            f"{', '.join(linears) or 'none'} (name one, or leave the readout unset for the last one)"
        )
    slots: list[WeightSlot] = []
    left_out: list[str] = []
    layers = 0
    for path, module in modules.items():
        if isinstance(module, nn.RNNBase) and getattr(module, "proj_size", 0):
            left_out.append(f"{path} (an nn.LSTM with proj_size: its recurrent matrices are not square)")
        elif isinstance(module, nn.RNNBase):
            gates = GATES_BY_MODE[module.mode]
            directions = 2 if module.bidirectional else 1
            for layer in range(module.num_layers):
                for direction in range(directions):
                    suffix = f"_l{layer}" + ("_reverse" if direction else "")
                    for kind in ("ih", "hh"):
                        attribute = f"weight_{kind}{suffix}"
                        slots.append(
                            WeightSlot(
                                _join(path, attribute),
                                module,
                                attribute,
                                layers + layer,
                                kind,
                                gates,
                                path,
                                direction,
                            )
                        )
            layers += module.num_layers
        elif type(module) in _CELL_GATES:
            for kind in ("ih", "hh"):
                attribute = f"weight_{kind}"
                slots.append(
                    WeightSlot(
                        _join(path, attribute),
                        module,
                        attribute,
                        layers,
                        kind,
                        _CELL_GATES[type(module)],
                        path,
                    )
                )
            layers += 1
        elif isinstance(module, nn.Linear | nn.Embedding):
            kind: WeightKind = (
                "encoder" if isinstance(module, nn.Embedding) else "readout" if path == readout else "linear"
            )
            slot_layer = -1 if kind == "encoder" or (kind == "linear" and not layers) else layers
            slots.append(
                WeightSlot(_join(path, "weight"), module, "weight", slot_layer, kind, ("out",), path)
            )
        else:
            for name, parameter in module.named_parameters(recurse=False):
                if parameter.dim() >= 2:
                    left_out.append(f"{_join(path, name)} ({type(module).__name__})")
    if not any(slot.kind in ("ih", "hh") for slot in slots):
        raise ConfigError(
            f"model {type(model).__name__} has no nn.LSTM, nn.GRU or nn.RNN layer (nor their cells); "
            "rnnprune prunes recurrent networks: build the model from those layers"
        )
    # A readout that runs before the recurrent layers would still be numbered after them.
    slots = [
        WeightSlot(s.name, s.owner, s.attribute, layers, s.kind, s.gates, s.module_path)
        if s.kind == "readout"
        else s
        for s in slots
    ]
    return Discovery(slots, left_out)


class MaskedWeights:
    """Mask methods for an `nn.Module` whose maskable matrices are `WeightSlot`s.

    Mixed into the built-in network and, by `with_masks`, into a user's module class.
    """

    _mask_slots: list[WeightSlot]
    _active: list[tuple[nn.Parameter, torch.Tensor]]

    def _init_masks(self, slots: Sequence[WeightSlot]) -> None:
        # Plain attributes, not submodules: nn.Module.__setattr__ keeps lists out of children.
        object.__setattr__(self, "_mask_slots", list(slots))
        for slot in slots:
            if not hasattr(slot.owner, slot.attribute + MASK_SUFFIX):
                weight = getattr(slot.owner, slot.attribute)
                slot.owner.register_buffer(
                    slot.attribute + MASK_SUFFIX, torch.ones_like(weight, dtype=torch.bool)
                )
        # Only masks with zeros are applied after each step; all-ones masks cost nothing.
        object.__setattr__(self, "_active", [])

    def _mask_of(self, slot: WeightSlot) -> torch.Tensor:
        mask: torch.Tensor = getattr(slot.owner, slot.attribute + MASK_SUFFIX)
        return mask

    def prunable_weights(self, scope: Iterable[WeightKind] = ("ih", "hh")) -> list[PrunableWeight]:
        """The weight matrices in `scope` with their masks, in a fixed order."""
        wanted = set(scope)
        return [
            PrunableWeight(
                name=slot.name,
                layer=slot.layer,
                kind=slot.kind,
                gates=slot.gates,
                weight=getattr(slot.owner, slot.attribute),
                mask=self._mask_of(slot),
                module=slot.module_path,
                direction=slot.direction,
            )
            for slot in self._mask_slots
            if slot.kind in wanted
        ]

    def masks(self) -> dict[str, torch.Tensor]:
        return {slot.name: self._mask_of(slot) for slot in self._mask_slots}

    @torch.no_grad()
    def set_masks(self, masks: Mapping[str, torch.Tensor]) -> None:
        """Replace the named masks, zero the pruned weights, and re-pack cuDNN's weights."""
        for slot in self._mask_slots:
            if slot.name in masks:
                self._mask_of(slot).copy_(masks[slot.name])
        self.refresh_masks()

    @torch.no_grad()
    def refresh_masks(self) -> None:
        """Re-read the mask buffers (after `set_masks`, `load_state_dict` or a move to another
        device) and apply them."""
        active = []
        for slot in self._mask_slots:
            mask = self._mask_of(slot)
            if not bool(mask.all()):
                weight = getattr(slot.owner, slot.attribute)
                # A copy in the weight's dtype: multiplying by a bool mask converts it every step.
                multiplier = mask.to(weight.dtype)
                weight.mul_(multiplier)
                active.append((weight, multiplier))
        object.__setattr__(self, "_active", active)
        for owner in {id(s.owner): s.owner for s in self._mask_slots}.values():
            if isinstance(owner, nn.RNNBase):
                owner.flatten_parameters()

    @torch.no_grad()
    def apply_masks(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Zero pruned weights in place, and the optimizer's per-weight state with them.

        Called after every optimizer step. Zeroing the moment estimates too keeps a pruned
        weight's history from leaking back if a method ever lets it regrow.
        """
        for weight, mask in self._active:
            weight.mul_(mask)
            if optimizer is not None:
                for state in optimizer.state.get(weight, {}).values():
                    if isinstance(state, torch.Tensor) and state.shape == weight.shape:
                        state.mul_(mask)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):  # type: ignore[no-untyped-def]
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)  # type: ignore[misc]
        self.refresh_masks()
        return result

    def __getstate__(self) -> dict[str, Any]:
        # The multipliers are a cache of the masks in the weights' dtype, as large as the weights:
        # a saved or copied model leaves them out (its masks are buffers) and rebuilds them.
        state = dict(super().__getstate__())  # type: ignore[misc]
        state["_active"] = []
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        if getattr(self, "_mask_slots", None) is not None:
            self.refresh_masks()

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        # `.to(device)` replaces parameters' storage: the cached multipliers must follow.
        result = super()._apply(fn, recurse)  # type: ignore[misc]
        if getattr(self, "_mask_slots", None) is not None:
            self.refresh_masks()
        return result


_MASKED_CLASSES: dict[type[nn.Module], type[nn.Module]] = {}


def _masked_class(cls: type[nn.Module]) -> type[nn.Module]:
    if cls not in _MASKED_CLASSES:
        _MASKED_CLASSES[cls] = type(
            f"Masked{cls.__name__}", (MaskedWeights, cls), {"__module__": cls.__module__}
        )
    return _MASKED_CLASSES[cls]


def with_masks(model: nn.Module, readout: str | None = None) -> nn.Module:
    """`model` itself, made maskable: mask buffers beside its recurrent and linear matrices,
    and the mask methods of `MaskedWeights`. Returns the same object; a masked model is
    returned as it is."""
    if isinstance(model, MaskedWeights):
        return model
    discovery = discover_weights(model, readout)
    model.__class__ = _masked_class(type(model))
    model._init_masks(discovery.slots)  # type: ignore[attr-defined]
    object.__setattr__(model, "left_out", tuple(discovery.left_out))
    return model
