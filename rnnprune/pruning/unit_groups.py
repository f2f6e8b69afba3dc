"""Hidden units as groups of weights, derived from the prunable weights alone.

A hidden unit j of one direction of one recurrent layer (of one module) owns rows j + g·H of
the layer's `weight_ih` and `weight_hh` for every gate g, and column j of its `weight_hh`.
What reads the layer reads the unit too: column direction·H + j of the next layer's
`weight_ih` (both of its directions) in the same module and, for the model's last recurrent
layer, of each readout whose inputs are exactly that layer's outputs (H · directions). With
all of that zero nothing reads the unit, so a compact export removes it exactly; with only
its rows zero it still emits a bias-driven signal that its readers see.

Only the weights handed in are seen: a reader outside the pool (the readout when the scope
leaves it out, a layer of another module, a user's own linear layer) keeps reading the unit.
A hidden width of a matrix is read from its shape (rows / gates); a width that shows as 0 (a
size the config cannot know before the task's data) is kept as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from rnnprune.pruning.base import Masks, PrunableWeight


@dataclass(frozen=True)
class Reader:
    """A matrix reading a layer's outputs: unit j is its column `offset + j`."""

    weight: PrunableWeight
    offset: int


@dataclass(frozen=True)
class UnitLayer:
    """The hidden units of one direction of one recurrent layer, with the pool's weights of
    their groups."""

    module: str
    layer: int
    direction: int
    hidden_size: int
    own: tuple[PrunableWeight, ...]  # the layer's ih and hh: the unit's gate rows
    recurrent: PrunableWeight | None  # the layer's hh, whose column j the unit feeds
    readers: tuple[Reader, ...]

    @property
    def label(self) -> str:
        """`layer0`, `layer0r` reversed (layers are numbered over the whole model)."""
        return f"layer{self.layer}" + ("r" if self.direction else "")

    def group_sums(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Per unit, the sum of `values` (one tensor per weight name, of its shape) over the
        unit's group, each entry once."""
        hidden = self.hidden_size
        terms = [values[w.name].sum(dim=1).reshape(-1, hidden).sum(dim=0) for w in self.own]
        if self.recurrent is not None:
            square = values[self.recurrent.name]
            # Column j of every gate crosses row j of that gate, already counted with the rows.
            crossing = square.reshape(-1, hidden, hidden).diagonal(dim1=1, dim2=2).sum(dim=0)
            terms.append(square.sum(dim=0) - crossing)
        for reader in self.readers:
            terms.append(values[reader.weight.name].sum(dim=0)[reader.offset : reader.offset + hidden])
        return torch.stack(terms).sum(dim=0)

    def drop(self, removed: torch.Tensor, keep: Masks) -> None:
        """Clear, in place in `keep`, every entry of the groups of the `removed` units (bool, H)."""
        units = torch.nonzero(removed).flatten()
        for weight in self.own:
            gates = weight.weight.shape[0] // self.hidden_size
            rows = (torch.arange(gates, device=units.device)[:, None] * self.hidden_size + units).flatten()
            keep[weight.name][rows] = False
        if self.recurrent is not None:
            keep[self.recurrent.name][:, units] = False
        for reader in self.readers:
            keep[reader.weight.name][:, reader.offset + units] = False


def unit_layers(weights: Sequence[PrunableWeight]) -> list[UnitLayer]:
    """The unit layers of the pool's recurrent matrices, in the order they appear."""
    recurrent = [w for w in weights if w.kind in ("ih", "hh")]
    if not recurrent:
        return []
    last_layer = max(w.layer for w in recurrent)
    keys = dict.fromkeys((w.module, w.layer, w.direction) for w in recurrent)
    layers = []
    for module, layer, direction in keys:
        own = tuple(w for w in recurrent if (w.module, w.layer, w.direction) == (module, layer, direction))
        hidden = own[0].weight.shape[0] // len(own[0].gates)
        directions = 1 + max(w.direction for w in recurrent if (w.module, w.layer) == (module, layer))
        width = hidden * directions
        hh = next((w for w in own if w.kind == "hh"), None)
        # An LSTM with projections feeds back its projections, not its units: no column rule.
        recurrent_column = hh if hh is not None and hh.weight.shape[1] == hidden else None
        next_layer = [w for w in recurrent if w.kind == "ih" and (w.module, w.layer) == (module, layer + 1)]
        readouts = [w for w in weights if w.kind == "readout"] if layer == last_layer else []
        readers = tuple(
            Reader(w, direction * hidden) for w in (*next_layer, *readouts) if w.weight.shape[1] == width
        )
        layers.append(UnitLayer(module, layer, direction, hidden, own, recurrent_column, readers))
    return layers


def drop_units(
    weights: Sequence[PrunableWeight], layers: Sequence[UnitLayer], removed: Sequence[torch.Tensor]
) -> Masks:
    """Keep-masks (nested in the current ones) with the groups of the `removed` units cleared."""
    keep = {w.name: w.mask.to(torch.bool).clone() for w in weights}
    for layer, units in zip(layers, removed, strict=True):
        layer.drop(units, keep)
    return keep
