"""Checks on the Ray cluster address, made before the sweep touches Ray.

`ray.init(address=...)` with a dead GCS address does not fail: Ray 2.60 retries the
connection for minutes, printing warnings, so a mistyped `--address` or a stale
`$RAY_ADDRESS` looks like a hung sweep. A bounded TCP connect tells the operator at once.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from rnnprune.errors import RnnpruneError

DEFAULT_GCS_PORT = 6379
DEFAULT_CLIENT_PORT = 10001


class ClusterError(RnnpruneError):
    """The Ray cluster address is malformed or nothing answers there."""


def _host_port(address: str) -> tuple[str, int]:
    scheme = "ray" if address.startswith("ray://") else ""
    parts = urlsplit(address if scheme else f"//{address}")
    if not parts.hostname:
        raise ClusterError(f"Ray address {address!r}: expected HOST:PORT or ray://HOST:PORT")
    try:
        port = parts.port
    except ValueError:
        raise ClusterError(f"Ray address {address!r}: the port is not a number") from None
    return parts.hostname, port or (DEFAULT_CLIENT_PORT if scheme else DEFAULT_GCS_PORT)


def check_ray_address(address: str | None, timeout_s: float = 10.0) -> None:
    """Fail fast unless the Ray head at `address` accepts a TCP connection within `timeout_s`.

    None and "local" start a local Ray, and "auto" is resolved by Ray from the node it runs on
    (inside `ray job submit` jobs Ray sets RAY_ADDRESS to the head's GCS address), so only
    explicit HOST:PORT and ray://HOST:PORT addresses are probed.
    """
    if address is None or address in ("local", "auto"):
        return
    if address.startswith(("http://", "https://")):
        raise ClusterError(
            f"Ray address {address!r} is the dashboard / job API, not a cluster address: submit the "
            f"sweep with `ray job submit --address {address} ...`, or pass the head's GCS address "
            f"(HEAD:{DEFAULT_GCS_PORT}) or Ray Client address (ray://HEAD:{DEFAULT_CLIENT_PORT}) to --address"
        )
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as error:
        raise ClusterError(
            f"Ray cluster at {address} is unreachable ({error.strerror or error}); check --address / "
            f"RAY_ADDRESS, that the head node is up (`ray status --address {host}:{port}` on a node) and "
            "that this machine may reach that port"
        ) from None
