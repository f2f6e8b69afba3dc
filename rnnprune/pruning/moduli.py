"""Moduli regularization + global magnitude pruning (Mackey et al., arXiv 2406.06290).

The method is a penalty, not a mask rule: λ · mean(R ⊙ |W_hh|^k), with coefficients R from
random neuron positions on a moduli space (`rnnprune.moduli`), is added to the loss in every
phase (dense, pruning, lottery ticket), so training itself concentrates the recurrent weight
on connections the geometry makes cheap; the masks are then the reference's plain global
magnitude pruning over the pool. The reference prunes in a linear ramp at epoch starts
(`pruning.schedule.kind: linear`); every core schedule works.

Controls of the paper and the specification, as parameter settings:

* no regularization: `space: none` (with `l1_other`: the NLP reference's "no reg", which
  keeps the plain L1 on the other weights);
* the navigation reference's "L1", which is no penalty: `space: standard` (inverted by
  default, hence R = 0); a real L1: `space: standard, invert: false`; a magnitude-matched L1*:
  the same with `scale: <rnnprune.moduli.mean_coefficient()>` (≈ 66.3 for the torus DoG);
* permuted DoG: `permute: true`; diffusion: `inhibitor: square, invert: false`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator
from torch import Generator

from rnnprune.moduli import GEOMETRIC_SPACES, Inhibitor, ModuliRegularizer, Space
from rnnprune.pruning.base import MethodParams, PruningMethod
from rnnprune.pruning.magnitude import prune_global_magnitude
from rnnprune.regularization import RegularizerHook

if TYPE_CHECKING:  # methods read weights, never build models
    from rnnprune.models.masking import MaskedWeights


class ModuliParams(MethodParams):
    """Parameters of moduli regularization; defaults are the navigation reference's torus DoG."""

    space: Space = Field(
        default="torus",
        description="Where the neurons live: torus (2-torus, side 10), klein (flat Klein bottle), "
        "torus6, circle and sphere (radius 5), s3 (radius 10); standard = R 1 everywhere (plain "
        "L1/L2, no geometry); none = R 0.",
    )
    inhibitor: Inhibitor = Field(
        default="dog",
        description="f(d) turning distances into coefficients: dog 100(exp(-d²/5) - exp(-4d²)), "
        "square d² (the paper's diffusion), ripple 50 + 50cos 2d, gauss 100exp(-d²/3), identity d. "
        "Ignored by standard and none.",
    )
    invert: bool = Field(
        default=True,
        description="R <- max(R) - R after the inhibitor (and permutation). The DoG is meant "
        "inverted (a cheap annulus around each neuron). Inverting standard gives R = 0: the "
        "navigation reference's 'L1' control, which penalises nothing; set false for a real L1.",
    )
    permute: bool = Field(
        default=False,
        description="Shuffle all N² coefficients before inverting: same values, no geometry "
        "(the paper's permuted control; R is then not symmetric).",
    )
    coefficient: float = Field(
        default=0.1,
        ge=0.0,
        description="λ, the penalty's weight (the reference's --weight_decay); 0 trains unpenalised. "
        "Its effect per weight is λR/N²: sweep it when N differs from the reference's.",
    )
    power: Literal[1, 2] = Field(default=1, description="k: weighted L1 (1) or L2 (2) of W_hh.")
    l1_other: bool = Field(
        default=False,
        description="Add (inside λ) the plain mean |w| of every weight_ih, of the embedding or "
        "encoder and of the readout, as the NLP reference does (also in its 'no reg' runs).",
    )
    trainable_embedding: bool = Field(
        default=False,
        description="Learn the neuron positions (v2's end-to-end geometry): R is recomputed from "
        "them at every step; torus/klein points are wrapped and sphere points renormalised "
        "after each step.",
    )
    scale: float = Field(
        default=1.0,
        gt=0.0,
        description="Constant multiplier of R, e.g. standard + invert false + scale = mean of "
        "the moduli R (rnnprune.moduli.mean_coefficient) for a magnitude-matched L1*.",
    )

    @model_validator(mode="after")
    def _meaningful_combination(self) -> ModuliParams:
        if self.space not in GEOMETRIC_SPACES:
            if self.trainable_embedding:
                raise ValueError(
                    f"trainable_embedding: space {self.space!r} has no neuron positions to learn; "
                    f"use one of {', '.join(GEOMETRIC_SPACES)}"
                )
            if self.permute:
                raise ValueError(
                    f"permute: space {self.space!r} has constant coefficients, permuting them "
                    "changes nothing; use a geometric space or permute: false"
                )
        if self.trainable_embedding and self.permute:
            raise ValueError(
                "trainable_embedding: a permuted R has no geometry for the positions to learn; "
                "set permute: false or trainable_embedding: false"
            )
        return self


def penalises(params: MethodParams) -> bool:
    """False exactly when the penalty is identically zero (such trials share the plain dense model)."""
    assert isinstance(params, ModuliParams)
    coefficients_vanish = params.space == "none" or (params.space == "standard" and params.invert)
    return params.coefficient > 0 and (params.l1_other or not coefficients_vanish)


def build_regularizer(params: MethodParams, model: MaskedWeights, generator: Generator) -> ModuliRegularizer:
    """One independent embedding per recurrent matrix of `model`, drawn from `generator`."""
    assert isinstance(params, ModuliParams)
    weights = model.prunable_weights(("ih", "hh", "encoder", "readout", "linear"))
    # The reference's order of the other matrices: input matrices, encoders, readout.
    other = [w.name for kind in ("ih", "encoder", "readout", "linear") for w in weights if w.kind == kind]
    return ModuliRegularizer(
        [(w.name, w.weight.shape[1]) for w in weights if w.kind == "hh"],
        generator,
        space=params.space,
        inhibitor=params.inhibitor,
        invert=params.invert,
        permute=params.permute,
        coefficient=params.coefficient,
        power=params.power,
        l1_other=params.l1_other,
        trainable_embedding=params.trainable_embedding,
        scale=params.scale,
        other=other,
    )


MODULI = PruningMethod(
    name="moduli",
    params=ModuliParams,
    prune=prune_global_magnitude,
    description="Moduli regularization (Mackey et al.): λ·mean(R ⊙ |W_hh|^k), R from random neuron "
    "positions on a moduli space (torus, Klein bottle, spheres...), shapes all training, dense phase "
    "included; masks by global magnitude over the pool. The reference's schedule is "
    "`pruning.schedule.kind: linear` (the core's gradual/cubic schedule also works).",
    regularizer=RegularizerHook(active=penalises, build=build_regularizer),
)
