"""What every deployment backend does. A backend starts the runner on a bundle (or its image) with
the deployment's admin token and says where it answers; hot swaps then go to the runner's own API,
the same for every backend, once per replica (`admin_urls`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class BackendError(Exception):
    """The target refused or failed: the message says what and where."""


@dataclass(frozen=True)
class Placement:
    endpoint_url: str
    handle: dict  # stored on the deployment: what start/stop/status need to find it again


class Backend(Protocol):
    kind: str
    uses_secret: bool  # whether it is made with the target's secret (a kubeconfig, registry credentials)

    def __init__(self, options: dict, secret: str = ""): ...

    @staticmethod
    def check_options(options: dict) -> None:
        """Raise BackendError naming the wrong option, what is wrong and what is allowed."""

    def start(self, deployment, bundle: Path, admin_token: str) -> Placement:
        """Run `deployment.revision` (its image where the target runs images, else `bundle`, the
        revision's files in a folder) and wait until it is ready."""

    def restart(self, deployment, admin_token: str) -> Placement:
        """Start a stopped deployment again, serving what it served when it stopped."""

    def is_running(self, deployment) -> bool: ...

    def admin_urls(self, deployment) -> list[str]:
        """Where each replica's runner answers its admin API (hot swap, rollback): a swap must
        reach every replica, not whichever one a load balancer picks."""

    def stop(self, deployment) -> None: ...

    def destroy(self, deployment) -> None: ...
