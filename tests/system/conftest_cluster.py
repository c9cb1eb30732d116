"""Fixtures for tests on the virtual cluster (``vcluster.py``).  Import them in a test module::

    from conftest_cluster import vcluster, vcluster_net, vcluster_session  # noqa: F401

* ``vcluster`` — the cluster with SLURM: ``ensure_cluster()`` before the test (it sets up once,
  then only checks, 0.2-0.5 s), ``reset()`` after it (every job cancelled and killed on every
  node, faults cleared, crashed nodes restarted).  Yields the ``vcluster`` module.
* ``vcluster_net`` — the same for tests that need only the nodes' network (plain mpirun, fault
  helpers): it still runs when SLURM cannot be installed.
* ``vcluster_session`` — session scope: tears the cluster down when the session ends
  (RDHPO_VCLUSTER_KEEP=1 leaves it up).  A test module that imports the fixtures gets its own
  copy of this fixture; the second teardown finds nothing left and is a no-op.

A test is skipped with the setup's reason when the cluster cannot be had (not root, apt failed,
RDHPO_SKIP_CLUSTER=1...), or fails with RDHPO_REQUIRE_CLUSTER=1.  Give cluster tests
``@pytest.mark.timeout(vcluster.setup_allowance() + N)``: the first test of a session may install
and start everything.
"""

from __future__ import annotations

import os

import pytest

import vcluster as _vc


@pytest.fixture(scope="session")
def vcluster_session():
    yield _vc
    if os.environ.get("RDHPO_VCLUSTER_KEEP") != "1":
        _vc.teardown_cluster()


def _need(slurm: bool) -> None:
    reason = _vc.ensure_cluster(slurm=slurm)
    if reason is None:
        _vc.clear_faults()  # a fault left by an earlier process (a bench, a killed run) starts no test
        return
    if os.environ.get("RDHPO_REQUIRE_CLUSTER") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def vcluster(vcluster_session):
    _need(slurm=True)
    yield _vc
    _vc.reset()


@pytest.fixture
def vcluster_net(vcluster_session):
    _need(slurm=False)
    yield _vc
    _vc.reset()
