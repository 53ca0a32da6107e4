"""A minimal Chat Completions streaming upstream on loopback, for the openai-v2 comparison.

``opentelemetry-instrumentation-openai-v2`` instruments ``chat.completions.create`` (and
embeddings) but not the Responses API, and steadystream's simulator serves only the Responses
API. To compare the two instrumentations on a stream that both actually instrument, this serves
``POST /v1/chat/completions`` with ``stream: true`` as the real API frames it: one
``chat.completion.chunk`` per SSE ``data:`` line, a final chunk with ``finish_reason`` and the
usage, then ``data: [DONE]``. The text is the same multi-byte vocabulary as the synthetic
Responses stream; the number of content chunks comes from ``max_tokens`` (or
``max_completion_tokens``).

HTTP/1.1 with keep-alive and chunked transfer encoding, one frame per HTTP chunk, 127.0.0.1
only. It exists for the benchmark, so it does one thing and refuses everything else with 404.

Run: ``python benchmarks/_chat_upstream.py`` prints ``listening on http://127.0.0.1:PORT/v1``
and serves until it gets SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _events import delta_texts

HOST = "127.0.0.1"
DEFAULT_CHUNKS = 32


def _chunk(cid: str, model: str, delta: dict[str, object], finish: str | None) -> dict[str, object]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def frames(n: int, model: str, cid: str, include_usage: bool) -> list[bytes]:
    """The SSE frames of one streamed completion (:func:`sse_events`), each already wrapped as
    one HTTP chunk."""
    return [
        f"{len(f):x}\r\n".encode() + f + b"\r\n" for f in sse_events(n, model, cid, include_usage)
    ]


def sse_events(n: int, model: str, cid: str, include_usage: bool) -> list[bytes]:
    """The SSE events of one streamed completion with ``n`` content chunks: the role chunk,
    the content chunks, the finish chunk, the usage chunk when asked for, then ``[DONE]``."""
    payloads: list[dict[str, object]] = [
        _chunk(cid, model, {"role": "assistant", "content": "", "refusal": None}, None)
    ]
    payloads += [_chunk(cid, model, {"content": text}, None) for text in delta_texts(n)]
    payloads.append(_chunk(cid, model, {}, "stop"))
    if include_usage:
        usage = dict(_chunk(cid, model, {}, None), choices=[])
        usage["usage"] = {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n}
        payloads.append(usage)
    out = []
    for p in payloads:
        body = b"data: " + json.dumps(p, ensure_ascii=False, separators=(",", ":")).encode()
        out.append(body + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return method, path, body


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    served = 0
    try:
        while True:
            req = await _read_request(reader)
            if req is None:
                return
            method, path, body = req
            if method != "POST" or not path.startswith("/v1/chat/completions"):
                msg = b'{"error":{"message":"not found","type":"invalid_request_error"}}'
                writer.write(
                    b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(msg)}\r\n\r\n".encode()
                    + msg
                )
                await writer.drain()
                continue
            params = json.loads(body or b"{}")
            n = int(params.get("max_completion_tokens") or params.get("max_tokens") or 32)
            usage = bool((params.get("stream_options") or {}).get("include_usage"))
            served += 1
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n"
                b"connection: keep-alive\r\n\r\n"
            )
            for frame in frames(
                n, str(params.get("model", "gpt-4.1")), f"chatcmpl-{served}", usage
            ):
                writer.write(frame)
                if writer.transport.get_write_buffer_size() > 64 * 1024:
                    await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def serve(port: int = 0) -> None:
    """Serve until SIGTERM/SIGINT; print the base URL once listening."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(_handle, HOST, port)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://{HOST}:{bound}/v1", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
