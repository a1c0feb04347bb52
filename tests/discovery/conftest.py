"""The deployment tests' fixtures that discovery's one-call deploy needs (a local target, its runners' folder)."""

from ..deployment.conftest import deployments_dir, local_target  # noqa: F401 (fixtures)
