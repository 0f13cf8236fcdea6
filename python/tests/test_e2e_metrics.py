"""End to end: every metric the Grafana dashboard charts is exported by a running node.

The names come from docs/grafana/pegaflow-node.json (each target's ``expr``): identifiers starting with
``pegaflow_``, with ``_bucket``/``_sum``/``_count`` stripped to find the family; a family charted through
``_bucket`` must be a histogram. Kamon publishes on a ~1 s tick and the node samples its counters every second, so
after a small workload the scrape is polled for up to 15 s.
"""

from __future__ import annotations

import json
import re
import time

import grpc
import pytest
from e2e_support import expect_error, random_hashes, unique

from pegaflow.flag import LoadFlagFile, LoadState
from pegaflow.shm import HOST_DEVICE, SharedKVCache
from pegaflow_testing.localnode import repo_root

pytestmark = pytest.mark.node

DASHBOARD = repo_root() / "docs" / "grafana" / "pegaflow-node.json"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def _exprs(panel_tree) -> list[str]:
    found = []
    if isinstance(panel_tree, dict):
        for key, value in panel_tree.items():
            if key == "expr" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_exprs(value))
    elif isinstance(panel_tree, list):
        for value in panel_tree:
            found.extend(_exprs(value))
    return found


def charted_families() -> dict[str, bool]:
    """Family name -> whether the dashboard reads it as a histogram (through ``_bucket``)."""
    families: dict[str, bool] = {}
    for expr in _exprs(json.loads(DASHBOARD.read_text())):
        for name in re.findall(r"\bpegaflow_[A-Za-z0-9_]+", expr):
            base = name
            for suffix in HISTOGRAM_SUFFIXES:
                if name.endswith(suffix):
                    base = name[: -len(suffix)]
            families[base] = families.get(base, False) or name.endswith("_bucket")
    return families


def _missing(node, families: dict[str, bool]) -> list[str]:
    metrics = node.scrape()
    types, names = metrics.types, metrics.names()
    missing = []
    for family, histogram in sorted(families.items()):
        if histogram:
            if types.get(family) != "histogram" or not {family + s for s in HISTOGRAM_SUFFIXES} <= names:
                missing.append(f"{family} (histogram: TYPE {types.get(family)})")
        elif family not in names and not {family + s for s in HISTOGRAM_SUFFIXES} <= names:
            missing.append(family)
    return missing


def _workload(engine) -> None:
    """Touches every charted area: save, query (hit and miss), lease, release, load (done and failed), an error."""
    namespace = unique("metrics")
    h = random_hashes(3)
    with SharedKVCache(2, 8, 16, 2, 128) as cache, LoadFlagFile(slots=2) as flags:
        ctx = engine.register_context(unique("engine"), namespace, 0, 1, 0, 2, HOST_DEVICE, cache.layer_registrations())
        with engine.open_session(ctx.context_id):
            cache.fill_random([0, 1], seed=4)
            engine.save(ctx.context_id, [(0, h[0]), (1, h[1])])
            lease = engine.query(namespace, h, lease_ttl_ms=10_000)
            assert lease.hit_blocks == 2
            assert engine.release(lease.lease_id).released
            slot = flags.slot(0)
            slot.reset()
            engine.load(ctx.context_id, [(4, h[0]), (5, h[1]), (6, h[2])], slot)
            assert slot.wait(10) is LoadState.FAILED  # two loaded, one missing
            with expect_error(grpc.StatusCode.INVALID_ARGUMENT, "namespace"):
                engine.query("", h)


def test_the_dashboard_charts_metrics_that_are_all_exported(node, engine):
    families = charted_families()
    assert len(families) >= 20 and "pegaflow_save_duration_seconds" in families, families
    assert families["pegaflow_save_duration_seconds"] is True

    _workload(engine)
    deadline = time.monotonic() + 15
    missing = _missing(node, families)
    while missing and time.monotonic() < deadline:
        time.sleep(0.5)
        missing = _missing(node, families)
    assert not missing, f"charted in {DASHBOARD.name} but not exported: {missing}"
