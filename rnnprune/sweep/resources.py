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
