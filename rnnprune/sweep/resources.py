"""Can this machine ever give one trial what the spec asks for?

Ray queues a trial whose request no node can meet and waits for ever, printing an
"insufficient resources" warning every minute. Locally there is no autoscaler to wait for, so
a request larger than the machine is an error before Ray starts, naming the field and the fix.
"""

from __future__ import annotations

import os

from rnnprune.errors import ConfigError
from rnnprune.sweep.spec import Resources


def machine_memory_gb() -> float | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (AttributeError, ValueError, OSError):  # not a POSIX system
        return None


def cuda_devices() -> int:
    import torch  # the driver only needs torch here, for a GPU request

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_local_resources(resources: Resources, num_cpus: int | None) -> None:
    """Fail when one trial's request exceeds this machine (a local Ray with `num_cpus` CPUs)."""
    cpus = num_cpus or os.cpu_count() or 1
    if resources.cpu > cpus:
        raise ConfigError(
            f"resources.cpu: {resources.cpu:g} CPUs per trial, but the local Ray has {cpus}; "
            f"set resources.cpu to at most {cpus} (or run on a cluster with --address)"
        )
    if resources.gpu > 0:
        gpus = cuda_devices()
        if gpus == 0:
            raise ConfigError(
                f"resources.gpu: {resources.gpu:g} GPUs per trial, but this machine has no CUDA device; "
                "set resources.gpu: 0 (trials train on the CPU) or run on a cluster with GPUs (--address)"
            )
        if resources.gpu > gpus:
            raise ConfigError(
                f"resources.gpu: {resources.gpu:g} GPUs per trial, but this machine has {gpus}; "
                f"set resources.gpu to at most {gpus} (fractions share one GPU between trials)"
            )
    memory = machine_memory_gb()
    if resources.memory_gb is not None and memory is not None and resources.memory_gb > memory:
        raise ConfigError(
            f"resources.memory_gb: {resources.memory_gb:g} GiB per trial, but this machine has "
            f"{memory:.1f} GiB; lower resources.memory_gb or leave it unset"
        )


# ---- on a cluster (`--address`): can any node, present or launchable, ever run one trial? ----

CLUSTER_WAIT_S = 60.0  # a static cluster's nodes may still be joining when the sweep starts


def fits(request: dict[str, float], node: dict[str, float]) -> bool:
    """Whether one node's total resources hold one trial's request (Ray's names: CPU, GPU, memory)."""
    names = {"cpu": "CPU", "gpu": "GPU", "memory": "memory"}
    return all(node.get(names[key], 0.0) >= amount for key, amount in request.items() if amount > 0)


def _describe(nodes: list[dict[str, float]]) -> str:
    shown = [
        ", ".join(f"{key} {value:g}" for key, value in sorted(node.items()) if key in ("CPU", "GPU"))
        or "no CPU"
        for node in nodes
    ]
    return "; ".join(shown) or "none"


def _node_types() -> list[dict[str, float]] | None:
    """An autoscaling cluster's launchable node types (None: no autoscaler config). Ray Train
    reads the same autoscaler state before it waits for resources."""
    from ray._private.state import state

    config = state.get_cluster_config()
    if config is None or not config.node_group_configs:
        return None
    return [dict(group.resources) for group in config.node_group_configs if group.max_count != 0]


def _alive_nodes() -> list[dict[str, float]]:
    import ray

    return [node["Resources"] for node in ray.nodes() if node.get("Alive")]


def check_cluster_resources(resources: Resources, wait_s: float = CLUSTER_WAIT_S) -> None:
    """On a connected cluster: fail when no node type can ever run one trial; on a cluster
    without an autoscaler, when no node has joined that could within `wait_s`."""
    import time

    request = resources.ray_resources()
    types = _node_types()
    if types is not None:  # autoscaling: Ray waits for a node to launch, as it should
        if not any(fits(request, node) for node in types):
            raise ConfigError(
                f"resources: no node type of this cluster can run one trial ({_request(request)}); "
                f"its node types offer {_describe(types)}: lower resources.cpu / resources.gpu or "
                "add a node type"
            )
        return
    deadline = time.monotonic() + wait_s
    while not any(fits(request, node) for node in _alive_nodes()):
        if time.monotonic() > deadline:
            nodes = _alive_nodes()
            raise ConfigError(
                f"resources: no node of this cluster can run one trial ({_request(request)}) and it has "
                f"no autoscaler; its nodes offer {_describe(nodes)}: lower resources.cpu / resources.gpu "
                "or add a node that has them"
            )
        time.sleep(2.0)


def _request(request: dict[str, float]) -> str:
    shown = {key: value for key, value in request.items() if value > 0}
    if "memory" in shown:
        shown["memory_gb"] = shown.pop("memory") / 2**30
    return ", ".join(f"{key} {value:g}" for key, value in shown.items())
