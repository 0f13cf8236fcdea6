"""Helpers of the connector tests: an engine factory and waiting helpers."""

from __future__ import annotations

import time
import uuid

from pegaflow_testing.fake_vllm import EngineOptions, FakeEngine, ModelShape


class EngineFactory:
    def __init__(self, vllm_classes: bool = False):
        self.engines: list[FakeEngine] = []
        self.vllm_classes = vllm_classes

    def model(self, prefix: str = "test") -> str:
        return f"{prefix}/model-{uuid.uuid4().hex[:10]}"

    def __call__(self, node_or_endpoint, shape: ModelShape | None = None, *, extra: dict | None = None, **options):
        endpoint = node_or_endpoint if isinstance(node_or_endpoint, str) else node_or_endpoint.endpoint
        shape = shape or ModelShape(model=self.model())
        config = {"pegaflow.endpoint": endpoint, **(extra or {})}
        options.setdefault("vllm_classes", self.vllm_classes)
        engine = FakeEngine(EngineOptions(shape=shape, extra_config=config, **options))
        self.engines.append(engine)
        return engine

    def close_all(self) -> None:
        errors = []
        for engine in self.engines:
            try:
                engine.close()
            except Exception as e:  # noqa: BLE001 - close every engine, then complain
                errors.append(e)
        self.engines = []
        if errors:
            raise errors[0]


def wait_until(predicate, timeout_s: float, what: str, pause_s: float = 0.02):
    """Polls ``predicate`` until it returns a truthy value (returned) or fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what} (last: {value!r})")
        time.sleep(pause_s)


def leases_settled(engine) -> bool:
    """True once the scheduler side holds no lease and every lease it took was released."""
    totals = engine.connector.counters.totals()
    side = engine.connector.scheduler_side
    return side.outstanding_leases() == 0 and totals.get("leases_taken", 0) == totals.get("leases_released", 0)


def run_until_recving(engine, so, req_id: str, max_steps: int = 500) -> list[set[int]]:
    """Executes ``so`` (already scheduled) and keeps stepping until every worker reported ``req_id`` in
    finished_recving; returns, per worker, the load-error block ids it reported up to and including that step
    (vLLM's rule: no later than the step in which the request appears in finished_recving)."""
    errors = [set() for _ in engine.workers]
    done = [False] * len(engine.workers)
    for _ in range(max_steps):
        outputs = engine.execute(so)
        for i, out in enumerate(outputs):
            kv = out.kv_connector_output
            if not done[i]:
                errors[i] |= kv.invalid_block_ids
                done[i] = req_id in (kv.finished_recving or ())
        engine.update(so, outputs)
        if all(done):
            return errors
        time.sleep(0.002)
        so = engine.schedule()
    raise AssertionError(f"{req_id} never appeared in finished_recving of every worker")
