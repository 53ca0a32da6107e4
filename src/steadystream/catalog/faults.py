"""The simulator's fault profiles by name, with what each one does to a request.

The runbooks print these (how to reproduce a failure class) and the simulator implements them
(``steadystream simulate --faults NAME``); the simulator checks at import that it implements
exactly these names, so a runbook never names a profile that does not exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["FAULT_PROFILES"]

FAULT_PROFILES: Final[Mapping[str, str]] = {
    "none": "no faults: every request streams the full response",
    "flaky": "5% mid-stream drops, 2% 429 (Retry-After 1s), 1% 503",
    "mixed": "a realistic mix of every failure class (about 25% of requests), for the demo",
    "rate-limit": "every request: 429 with Retry-After 1s",
    "outage": "every request: 503",
    "server-errors": "every request: 500",
    "drops": "every stream: connection dropped mid-stream",
    "early-drops": "every stream: connection dropped before the first content",
    "slow-first-token": "every stream: 4s before the first token",
    "stall": "every stream: 10s of silence in the middle",
    "broken-chunks": "every stream: frames cut at random offsets",
    "utf8-splits": "every stream: cut inside every UTF-8 character",
    "slow-drip": "every stream: 50ms before every write",
    "keepalive-only": "every stream: keep-alive comments for 10s, then an empty end",
    "error-event": "every stream: an error event mid-stream",
    "failed": "every stream: response.failed mid-stream",
    "incomplete": "every stream: response.incomplete mid-stream",
    "resume-failure": "streams drop mid-way and every resume is refused with 404",
}
