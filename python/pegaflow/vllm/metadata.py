"""What the scheduler side sends the workers each step: plain data only (lists, ints, bytes, str).

vLLM serializes the metadata with the SchedulerOutput to every worker process, so nothing here may hold a Request,
a tensor or a lock. One ``PegaConnectorMetadata`` per step, built by ``build_connector_meta`` (also for empty steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pegaflow.vllm import _vllm


@dataclass
class BlockTransfer:
    """One request's blocks to move this step: ``block_ids[i]`` (vLLM's block index) holds ``hashes[i]``."""

    req_id: str
    block_ids: list[int]
    hashes: list[bytes]

    def __post_init__(self):
        if len(self.block_ids) != len(self.hashes):
            raise ValueError(f"request {self.req_id}: {len(self.block_ids)} block ids but {len(self.hashes)} hashes")


@dataclass
class PegaConnectorMetadata(_vllm.metadata_base()):
    # Request-level loads to start (async): the request waits in WAITING_FOR_REMOTE_KVS until every worker reports
    # it in finished_recving.
    loads: list[BlockTransfer] = field(default_factory=list)
    # Full blocks computed by this step's forward: saved after the forward (wait_for_save).
    saves: list[BlockTransfer] = field(default_factory=list)
    # Requests preempted this step: their blocks are about to be reused, so in-flight saves of them are fenced.
    preempted_req_ids: list[str] = field(default_factory=list)
    # Finished requests whose blocks vLLM holds for us (request_finished returned True): report each in
    # finished_sending once its saves are done.
    hold_req_ids: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.loads or self.saves or self.preempted_req_ids or self.hold_req_ids)
