"""A stand-in for ``vllm serve`` — NOT vLLM: an OpenAI-compatible HTTP server whose engine is ``fake_vllm.FakeEngine``.

For the prefill/decode tests and the demo: the real ``PegaKVConnector`` in both roles (scheduler and worker) driven
by the vLLM-shaped scheduler loop, with its KV cache in shared memory registered with the node at ``--endpoint``::

    python -m pegaflow_testing.openai_standin --port 8100 --endpoint 127.0.0.1:50055 [--delay-saves-s 3]

What it serves (the parts of vLLM's API the proxy uses): ``POST /v1/completions`` and ``POST /v1/chat/completions``
(``prompt`` a string or token ids; ``messages``; ``max_tokens``; ``stream`` for Server-Sent Events;
``kv_transfer_params`` passed into the request as vLLM does, and the one ``request_finished`` returned put into the
answer), ``GET /health``, ``GET /v1/models`` and ``GET /stats`` (the connector's counters, the byte checks of every
loaded token, and the ``X-Request-Id`` headers seen). The "tokenizer" makes one token per UTF-8 byte of the prompt;
a generated token ``t`` is the text `` t<t>``; tokens are the fake model's (``fake_vllm.sampled_token``), so any two
engines produce the same answer for the same prompt: a decode engine that got wrong KV bytes is caught by the byte
check before it computes, and answers differently after a recompute only if the bytes were wrong.

Threads: the HTTP server's handler threads parse, submit and wait; one engine thread owns the FakeEngine (not
thread-safe) and steps it whenever it has work.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import queue
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pegaflow_testing.fake_vllm import EngineOptions, FakeEngine, ModelShape, sampled_token, token_digests

_log = logging.getLogger("pegaflow_testing.openai_standin")

VOCAB = 32000
MODEL = "fake/llama-tiny"


class _QuietOnHangUp(ThreadingHTTPServer):
    """A client that hangs up (the proxy closing its kept-alive connections at exit) is not an error to print."""

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class BadRequest(ValueError):
    pass


def tokenize(text: str) -> list[int]:
    return [b + 1 for b in text.encode()]


def detokenize(tokens: list[int]) -> str:
    return "".join(f" t{t}" for t in tokens)


def expected_text(prompt: str, max_tokens: int) -> str:
    """What the fake model answers for ``prompt``: every engine computes the same tokens from the same KV."""
    tokens = tokenize(prompt)
    digests = token_digests(tokens)
    out = []
    for _ in range(max_tokens):
        out.append(sampled_token(digests[-1]))
        digests = token_digests(tokens + out, digests)
    return detokenize(out)


class _Pending:
    def __init__(self, req_id: str, tokens: list[int], max_tokens: int, params):
        self.req_id = req_id
        self.tokens = tokens
        self.max_tokens = max_tokens
        self.params = params
        self.events: queue.Queue = queue.Queue()
        self.sent = 0


class EngineLoop:
    """The FakeEngine on its own thread: requests go in through ``submit``, tokens and the result come out."""

    def __init__(self, engine: FakeEngine):
        self.engine = engine
        self._cond = threading.Condition()
        self._incoming: list[_Pending] = []
        self._active: dict[str, _Pending] = {}
        self._closing = False
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="standin-engine", daemon=True)
        self._thread.start()

    def submit(self, pending: _Pending) -> None:
        with self._cond:
            if self.error is not None:
                raise RuntimeError(f"the engine stopped: {self.error}")
            self._incoming.append(pending)
            self._cond.notify_all()

    def call(self, fn):
        """Runs ``fn(engine)`` on the engine thread (the engine is not thread-safe) and returns its result."""
        done: queue.Queue = queue.Queue()
        with self._cond:
            self._incoming.append(("call", fn, done))
            self._cond.notify_all()
        ok, value = done.get(timeout=30)
        if not ok:
            raise value
        return value

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(10)

    def _run(self) -> None:
        scheduler = self.engine.scheduler
        try:
            while True:
                with self._cond:
                    while not self._incoming and not scheduler.has_work() and not self._closing:
                        self._cond.wait(0.05)
                    if self._closing:
                        return
                    incoming, self._incoming = self._incoming, []
                for item in incoming:
                    if isinstance(item, tuple):
                        _, fn, done = item
                        try:
                            done.put((True, fn(self.engine)))
                        except Exception as e:  # noqa: BLE001 - handed back to the caller
                            done.put((False, e))
                        continue
                    try:
                        self.engine.add_request(item.req_id, item.tokens, item.max_tokens, item.params)
                    except Exception as e:  # noqa: BLE001 - this request's problem only
                        item.events.put(("error", str(e)))
                        continue
                    self._active[item.req_id] = item
                if scheduler.has_work():
                    self.engine.step()
                    self._publish()
                    if not scheduler.running:
                        time.sleep(0.002)  # waiting for loads, seals or saves: let the nodes work
        except BaseException as e:  # noqa: BLE001 - report it to every waiting request, then stop
            _log.exception("the engine loop failed")
            with self._cond:
                self.error = repr(e)
            for pending in self._active.values():
                pending.events.put(("error", f"the engine failed: {e!r}"))

    def _publish(self) -> None:
        scheduler = self.engine.scheduler
        for req_id, pending in list(self._active.items()):
            result = scheduler.results.get(req_id)
            request = scheduler.requests.get(req_id)
            tokens = result.output_token_ids if result is not None else (request.output_token_ids if request else [])
            for token in tokens[pending.sent :]:
                pending.events.put(("token", token))
            pending.sent = len(tokens)
            if result is not None:
                pending.events.put(("done", result))
                del self._active[req_id]
                del scheduler.results[req_id]


class StandinServer:
    """The HTTP side: one per engine."""

    def __init__(self, loop: EngineLoop, port: int, name: str, max_model_len: int):
        self.loop = loop
        self.name = name
        self.max_model_len = max_model_len
        self.request_ids: list[str] = []
        self.completed: list[dict] = []  # per finished request: what tests look at
        self._ids = itertools.count()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                _log.debug("%s " + fmt, server.name, *args)

            def do_GET(self):
                if self.path == "/health":
                    self._json(200, {"status": "ok"} if server.loop.error is None else {"error": server.loop.error})
                elif self.path == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
                elif self.path == "/stats":
                    self._json(200, server.stats())
                else:
                    self._json(404, _error(f"no route {self.path}", 404))

            def do_POST(self):
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(length) or b"{}")
                    if not isinstance(body, dict):
                        raise BadRequest("the body must be a JSON object")
                    if self.path == "/v1/completions":
                        server.complete(self, body, chat=False)
                    elif self.path == "/v1/chat/completions":
                        server.complete(self, body, chat=True)
                    else:
                        self._json(404, _error(f"no route {self.path}", 404))
                except (BadRequest, json.JSONDecodeError) as e:
                    self._json(400, _error(str(e), 400))
                except BrokenPipeError:
                    pass

            def _json(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = _QuietOnHangUp(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def stats(self) -> dict:
        def collect(engine):
            return {"verified_blocks": engine.verified_blocks, "mismatches": list(engine.mismatches)}

        out = self.loop.call(collect)
        out["totals"] = self.loop.call(lambda engine: engine.totals())
        with self._lock:
            out["request_ids"] = list(self.request_ids)
            out["completed"] = list(self.completed)
        return out

    # ---- one completion ----

    def complete(self, handler, body: dict, chat: bool) -> None:
        tokens = _prompt_tokens(body, chat)
        max_tokens = body.get("max_tokens", 16)
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise BadRequest("max_tokens: expected an integer >= 1")
        if len(tokens) + max_tokens > self.max_model_len:
            raise BadRequest(f"prompt ({len(tokens)} tokens) + max_tokens ({max_tokens}) > {self.max_model_len}")
        params = body.get("kv_transfer_params")
        if params is not None and not isinstance(params, dict):  # vLLM's request model types it as a dict
            raise BadRequest("kv_transfer_params: expected an object")
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise BadRequest("stream: expected true or false")
        header_id = handler.headers.get("X-Request-Id") or ""
        with self._lock:
            self.request_ids.append(header_id)
        req_id = f"{'chatcmpl' if chat else 'cmpl'}-{header_id or 'anon'}-{next(self._ids)}"
        pending = _Pending(req_id, tokens, max_tokens, params)
        self.loop.submit(pending)
        created = int(time.time())
        kind = "chat.completion" if chat else "text_completion"
        base = {"id": req_id, "created": created, "model": MODEL}
        if not stream:
            out, result = self._collect(pending)
            if result is None:
                handler._json(500, _error(out, 500))
                return
            text = detokenize(out)
            choice = {"index": 0, "finish_reason": _finish(result.status), "logprobs": None}
            choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
            self._record(header_id, result)
            handler._json(
                200,
                {
                    **base,
                    "object": kind,
                    "choices": [choice],
                    "usage": _usage(result),
                    "kv_transfer_params": result.kv_transfer_params,
                },
            )
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        kind_chunk = "chat.completion.chunk" if chat else "text_completion"
        while True:
            kind_event, value = pending.events.get(timeout=120)
            if kind_event == "token":
                piece = detokenize([value])
                delta = {"delta": {"content": piece}} if chat else {"text": piece}
                chunk = {**base, "object": kind_chunk, "choices": [{"index": 0, **delta, "finish_reason": None}]}
            elif kind_event == "done":
                self._record(header_id, value)
                delta = {"delta": {}} if chat else {"text": ""}
                chunk = {
                    **base,
                    "object": kind_chunk,
                    "choices": [{"index": 0, **delta, "finish_reason": _finish(value.status)}],
                    "kv_transfer_params": value.kv_transfer_params,
                }
            else:
                chunk = {"error": {"message": value}}
            _write_chunk(handler, f"data: {json.dumps(chunk)}\n\n".encode())
            if kind_event != "token":
                break
        _write_chunk(handler, b"data: [DONE]\n\n")
        _write_chunk(handler, b"")

    def _collect(self, pending: _Pending):
        tokens = []
        while True:
            kind, value = pending.events.get(timeout=120)
            if kind == "token":
                tokens.append(value)
            elif kind == "done":
                return tokens, value
            else:
                return value, None

    def _record(self, header_id: str, result) -> None:
        with self._lock:
            self.completed.append(
                {
                    "x_request_id": header_id,
                    "status": result.status,
                    "prompt_tokens": result.num_prompt_tokens,
                    "external_tokens": result.external_tokens,
                    "output_token_ids": list(result.output_token_ids),
                    "kv_transfer_params": result.kv_transfer_params,
                }
            )


def _write_chunk(handler, data: bytes) -> None:
    handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    handler.wfile.flush()


def _prompt_tokens(body: dict, chat: bool) -> list[int]:
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages: expected a non-empty list")
        text = ""
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("content"), str) or not isinstance(m.get("role"), str):
                raise BadRequest(f"messages[{i}]: expected an object with string role and content")
            text += f"{m['role']}: {m['content']}\n"
        return tokenize(text + "assistant:")
    prompt = body.get("prompt")
    if isinstance(prompt, str) and prompt:
        return tokenize(prompt)
    if isinstance(prompt, list) and prompt and all(type(t) is int and 0 < t < VOCAB for t in prompt):
        return list(prompt)
    raise BadRequest(f"prompt: expected a non-empty string or a list of token ids 1..{VOCAB - 1}")


def _finish(status: str) -> str:
    return {"FINISHED_LENGTH_CAPPED": "length", "FINISHED_ABORTED": "abort"}.get(status, "error")


def _usage(result) -> dict:
    out = len(result.output_token_ids)
    return {
        "prompt_tokens": result.num_prompt_tokens,
        "completion_tokens": out,
        "total_tokens": result.num_prompt_tokens + out,
    }


def _error(message: str, code: int) -> dict:
    return {"error": {"message": message, "type": "BadRequestError" if code == 400 else "Error", "code": code}}


def build(args) -> StandinServer:
    shape = ModelShape(num_layers=4, num_kv_heads=2, head_size=64, block_size=16, num_gpu_blocks=args.gpu_blocks)
    extra = {"pegaflow.endpoint": args.endpoint, "pegaflow.pd_seal_wait_ms": args.seal_wait_ms}
    engine = FakeEngine(
        EngineOptions(
            shape=shape,
            extra_config=extra,
            engine_id=f"standin-{args.name}",
            max_num_batched_tokens=256,
            load_failure_policy="recompute",
        )
    )
    if args.delay_saves_s > 0:
        engine.call_workers("delay_saves", args.delay_saves_s)
    loop = EngineLoop(engine)
    return StandinServer(loop, args.port, args.name, shape.num_gpu_blocks * shape.block_size)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="HTTP port (0: any free one; printed)")
    parser.add_argument("--endpoint", required=True, help="the node's Engine gRPC address, HOST:PORT")
    parser.add_argument("--name", default="engine", help="for logs and the engine id")
    parser.add_argument("--delay-saves-s", type=float, default=0.0, help="every Save call waits this long first")
    parser.add_argument("--seal-wait-ms", type=int, default=10_000, help="pegaflow.pd_seal_wait_ms")
    parser.add_argument("--gpu-blocks", type=int, default=512, help="the fake GPU's KV blocks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=f"[{args.name}] %(levelname)s %(name)s: %(message)s")
    server = build(args)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)  # clean up: the fake KV caches are shared-memory files
    print(f"listening on 127.0.0.1:{server.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.loop.close()
        server.loop.engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
