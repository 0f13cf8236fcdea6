"""The exception types of the clients: EngineError (a failed call, with its status code and the node's details) and
SessionEndedError (a wait that cannot end well because the session with the node is gone)."""

from __future__ import annotations

import grpc


class EngineError(Exception):
    """A PegaFlow RPC failed. ``code`` is the gRPC status (INVALID_ARGUMENT, UNAVAILABLE, ...)."""

    def __init__(self, code: grpc.StatusCode, details: str, method: str = ""):
        super().__init__(f"{method or 'rpc'} failed: {code.name}: {details}")
        self.code = code
        self.details = details
        self.method = method

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError, method: str) -> EngineError:
        # Errors raised by calls are also grpc.Call objects; anything else (rare) has no status to report.
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else str(error)
        return cls(code or grpc.StatusCode.UNKNOWN, details or "", method)


class SessionEndedError(EngineError):
    """The Session stream ended (the node died, restarted or dropped the context) while a load was pending.

    The load's outcome is unknown and its flag will never be written: treat its blocks as not loaded. Code UNAVAILABLE.
    """

    def __init__(self, context_id: str, reason: str):
        super().__init__(
            grpc.StatusCode.UNAVAILABLE,
            f"the session of context {context_id} ended ({reason}) while the load was pending: "
            "its blocks are not loaded",
            "Session",
        )
        self.context_id = context_id
        self.reason = reason
