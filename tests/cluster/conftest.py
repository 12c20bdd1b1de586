"""Fixtures for the multi-broker suites; the cluster itself is `harness.StromCluster`."""
import uuid

import pytest

from .harness import StromCluster


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(scope="module")
def strom_cluster(tmp_path_factory):
    """Three keepers + three brokers shared by one test module; tests use their own topics and
    leave every broker running (the per-test fixture restarts any that a failure left down)."""
    c = StromCluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start()
    except BaseException:
        print(c.logs())
        c.stop()
        raise
    yield c
    c.stop()


@pytest.fixture
def cluster3(strom_cluster, request):
    strom_cluster.ensure_all_up()
    yield strom_cluster
    failed = any(getattr(request.node, f"rep_{w}", None) is not None and getattr(request.node, f"rep_{w}").failed
                 for w in ("setup", "call"))
    if failed:
        # Shown by pytest under "Captured stdout teardown" of the failed test.
        print(strom_cluster.logs())
    strom_cluster.ensure_all_up()


@pytest.fixture
def topic_name():
    return f"r-{uuid.uuid4().hex[:10]}"
