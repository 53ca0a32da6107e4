"""Every named fault profile of the simulator, sync and async, through the resilient
generate_content_stream with the real google-genai SDK: each stream either delivers the exact
answer (sha256) or ends with a typed error whose checkpoint is exactly what the consumer got;
the delivered text is never anything but a prefix of the answer; one span per stream."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import steadystream as ss
from gemini_support import (
    CONTENTS,
    MODEL,
    TOKENS,
    Telemetry,
    async_client,
    sha,
    sync_client,
    text_of,
)
from steadystream.instrumentation.gemini import generate_content_stream
from steadystream.simulate import PROFILES, Upstream, expected_text

SEED = 3
EXPECTED = expected_text(CONTENTS, seed=SEED, tokens=TOKENS)


def spec() -> ss.Spec:
    """Short first-token and idle budgets (the slow-first-token and stall profiles cross
    them by seconds), one retry, tiny backoff."""
    return ss.Spec.model_validate(
        {
            "version": 1,
            "service": "svc",
            "stream": {
                "timeouts": {"first_token": "1s", "stream_idle": "1s", "total": "120s"},
                "retry": {
                    "max_retries": 1,
                    "base_backoff": "10ms",
                    "max_backoff": "50ms",
                    "budget": "100%",
                    "min_per_second": 10,
                },
            },
        }
    )


def run(mode: str, tel: Telemetry, up: Upstream) -> tuple[list[Any], BaseException | None]:
    kw = {"model": MODEL, "contents": CONTENTS, "config": {"max_output_tokens": TOKENS}}
    seen: list[Any] = []
    if mode == "sync":
        client, http = sync_client(up)
        try:
            for chunk in generate_content_stream(tel.monitor, client, **kw):
                seen.append(chunk)
        except ss.StreamError as exc:
            return seen, exc
        finally:
            http.close()
        return seen, None

    async def main() -> BaseException | None:
        aclient, http = async_client(up)
        try:
            async for chunk in generate_content_stream(tel.monitor, aclient, **kw):
                seen.append(chunk)
        except ss.StreamError as exc:
            return exc
        finally:
            await http.aclose()
        return None

    return seen, asyncio.run(main())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_is_exact_or_a_typed_error(mode: str, profile: str) -> None:
    tel = Telemetry(spec())
    with Upstream(profile=profile, seed=SEED) as up:
        seen, error = run(mode, tel, up)
    text = text_of(seen)
    assert EXPECTED.startswith(text)  # never a repeated or foreign byte
    finish = seen[-1].candidates[0].finish_reason if seen and seen[-1].candidates else None
    if error is None:
        assert finish is not None  # the answer ended, in full or truncated (MAX_TOKENS)
        if finish == "STOP":
            assert sha(text) == sha(EXPECTED)
    else:
        cp = error.checkpoint
        delivered = len(text.encode())
        if cp is None:
            assert delivered == 0
        else:
            assert (cp.offset, cp.sha256) == (delivered, sha(text))
    assert len(tel.stream_spans()) == 1
    outcomes = sum(tel.value("stream_requests_total", outcome=o) for o in ("ok", "error"))
    assert outcomes == 1
