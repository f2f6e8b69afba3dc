"""Masked vs unmasked training step time, same model, same data, one process.

Both models train through the phase engine's own step loop (`rnnprune.training.loop.
train_steps`), as a dense and a pruning phase do: the masked model is pruned to 90%
(weight_ih and weight_hh), carries the pruning phase's mask-events hook, and after every
optimizer step re-applies its masks to the weights and to Adam's moment estimates. Blocks of
steps alternate between the two models so that drift in machine load hits both alike; the
figure is the ratio of the medians of per-step times.

By default the model is the built-in network on random sequences (`--cell`, `--hidden`,
`--seq`, `--features`). `--factory` builds a user's model instead (a registered name such as
an installed plugin's, or module:attribute), with its default parameters, masked by
discovery as a trial masks it; `--task` takes the shapes, the objective and the batch from a
task's training split (default parameters).

    python -m benchmarks.masked_step [--cell lstm] [--hidden 128] [--batch 64] [--blocks 30]
    python -m benchmarks.masked_step --factory sunspots_lstm --task sunspots --batch 16
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

import torch

from benchmarks.common import write_result
from rnnprune.data import registry as task_registry
from rnnprune.data.base import Architecture
from rnnprune.models import RecurrentNet
from rnnprune.models import registry as model_registry
from rnnprune.models.base import ModelInputs
from rnnprune.models.masking import MaskedWeights, with_masks
from rnnprune.objectives import Classification, Objective
from rnnprune.pruning.base import NoParams, nested
from rnnprune.pruning.magnitude import prune_global_magnitude
from rnnprune.training.hooks import MaskEventsHook, TrainingHook
from rnnprune.training.loop import OptimizerSettings, make_optimizer, train_steps
from rnnprune.training.plan import MaskSchedule

SETTINGS = OptimizerSettings("adam", 1e-3, 0.9, 0.0, "constant", 1.0)
CLASSES = 10  # outputs of the built-in network on random sequences

Batch = tuple[torch.Tensor, torch.Tensor]


def _constant_lr(step: int) -> float:
    return SETTINGS.lr


def _steps(
    model: MaskedWeights,
    optimizer: torch.optim.Optimizer,
    hooks: list[TrainingHook],
    batch: Batch,
    steps: int,
    objective: Objective,
) -> None:
    train_steps(model, optimizer, iter([batch] * steps), SETTINGS, 0, _constant_lr, objective, hooks)


def _task_batch(task_name: str, size: int) -> tuple[ModelInputs, Batch, Objective]:
    """The model inputs, the first `size` training examples and the objective of a task."""
    task = task_registry.get(task_name)
    params = task.params()
    data = task.load(params, Path("."), False)
    inputs = ModelInputs(data.input_size, data.num_classes, data.architecture)
    return inputs, (data.train.inputs[:size], data.train.targets[:size]), data.objective


def _random_batch(args: argparse.Namespace) -> tuple[ModelInputs, Batch, Objective]:
    batch = (torch.randn(args.batch, args.seq, args.features), torch.randint(0, CLASSES, (args.batch,)))
    return ModelInputs(args.features, CLASSES, Architecture()), batch, Classification()


def _model(args: argparse.Namespace, inputs: ModelInputs) -> MaskedWeights:
    if args.factory is None:
        return RecurrentNet(args.cell, inputs.input_size, args.hidden, 1, inputs.num_outputs)
    factory = model_registry.get(args.factory)
    module = factory.build(factory.params(), inputs)
    return with_masks(module, factory.readout)  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=28)
    parser.add_argument("--features", type=int, default=28)
    parser.add_argument("--factory", help="a model factory (name or module:attribute) instead of --cell")
    parser.add_argument("--task", help="take shapes, objective and batch from this task's training data")
    parser.add_argument("--blocks", type=int, default=30, help="alternating blocks per model")
    parser.add_argument("--steps", type=int, default=10, help="steps per block")
    parser.add_argument("--sparsity", type=float, default=0.9)
    args = parser.parse_args()

    inputs, batch, objective = _task_batch(args.task, args.batch) if args.task else _random_batch(args)
    torch.manual_seed(0)
    models = {name: _model(args, inputs) for name in ("dense", "masked")}
    models["masked"].load_state_dict(models["dense"].state_dict())
    weights = models["masked"].prunable_weights(("ih", "hh"))
    models["masked"].set_masks(
        nested(prune_global_magnitude(weights, args.sparsity, NoParams(), torch.Generator()), weights)
    )
    optimizers = {name: make_optimizer(model, SETTINGS) for name, model in models.items()}
    # The pruning phase's hook, its events already applied: what each of its steps pays.
    schedule = MaskSchedule("global_magnitude", NoParams(), ("ih", "hh"), ())
    hooks: dict[str, list[TrainingHook]] = {
        "dense": [],
        "masked": [MaskEventsHook(schedule, 0, lambda epoch: {})],
    }

    def run(name: str) -> None:
        _steps(models[name], optimizers[name], hooks[name], batch, args.steps, objective)

    for name in models:  # warm-up: allocator, Adam state, thread pools
        run(name)
    times: dict[str, list[float]] = {"dense": [], "masked": []}
    for block in range(args.blocks):
        order = ("dense", "masked") if block % 2 == 0 else ("masked", "dense")
        for name in order:
            start = time.perf_counter()
            run(name)
            times[name].append((time.perf_counter() - start) / args.steps)

    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["masked"] / medians["dense"]
    # A factory replaces --cell and --hidden, a task --seq and --features: the command leaves them out.
    unused = {"cell", "hidden"} if args.factory else set()
    unused |= {"seq", "features"} if args.task else set()
    given = {k: v for k, v in vars(args).items() if v is not None and k not in unused}
    result = {
        "command": "python -m benchmarks.masked_step " + " ".join(f"--{k} {v}" for k, v in given.items()),
        "settings": vars(args),
        "parameters": sum(p.numel() for p in models["dense"].parameters()),
        "median_step_ms": {name: 1000 * value for name, value in medians.items()},
        "ratio_masked_over_dense": ratio,
        "target_ratio": 1.05,
    }
    label = re.sub(r"\W+", "_", args.factory) if args.factory else f"{args.cell}{args.hidden}"
    path = write_result(f"masked_step_{label}", result)
    print(
        f"median step: dense {1000 * medians['dense']:.2f} ms, masked {1000 * medians['masked']:.2f} ms, "
        f"ratio {ratio:.3f} (target <= 1.05) -> {path}"
    )


if __name__ == "__main__":
    main()
