"""The one exception type of the gRPC clients: a failed call, with its status code and the node's details."""

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
