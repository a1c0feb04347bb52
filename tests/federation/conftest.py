"""Federation fixtures: `cluster` starts real portal instances (tests/federation/cluster.py), each
behind its own nginx terminator with an identity from the cluster's CA. One cluster per test module:
an instance costs seconds to start (a fresh PostgreSQL database to migrate), so a module's tests
share the instances they make and keep their data apart (a peer of their own, a name of their own)."""

from __future__ import annotations

import shutil

import pytest

from .cluster import Cluster, running_cluster


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    """A cluster: `cluster.make_instances(2)` starts two instances; everything is stopped and removed
    when the module's tests are done."""
    if not shutil.which("nginx") and not shutil.which("nginx", path="/usr/sbin"):
        pytest.fail("federation tests need nginx: run `make nginx` (bash scripts/ensure-nginx.sh)", pytrace=False)
    if not shutil.which("docker-registry"):
        pytest.fail("federation tests need docker-registry: run `make images`", pytrace=False)
    with running_cluster() as made:
        yield made
