"""Fault plans: the header syntax, its parser, and the named profiles that mix faults at rates.

A :class:`FaultPlan` says what goes wrong with one HTTP request. It comes either from the request's
``x-steadystream-fault`` header or, when the header is absent, from the server's :class:`Profile`,
which draws one fault (or none) per request from a seeded generator keyed by
``(server seed, request number)``, so a run is reproducible. The syntax is documented in
:mod:`steadystream.simulate`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from ..catalog.classes import failure_classes
from ..catalog.faults import FAULT_PROFILES
from ..spec.units import parse_duration

SplitMode = int | Literal["utf8", "random"]
Terminal = Literal["error_event", "failed", "incomplete"]

# Fault kinds as counted in ``Upstream.stats.faults``. HTTP status faults count as
# ``status_<code>`` (``status_429``, ``status_503``, ...).
KIND_DELAY: Final = "delay"
KIND_STALL: Final = "stall"
KIND_DROP: Final = "drop"
KIND_END: Final = "end"
KIND_ERROR_EVENT: Final = "error_event"
KIND_FAILED: Final = "failed"
KIND_INCOMPLETE: Final = "incomplete"
KIND_SPLIT: Final = "split"
KIND_DRIP: Final = "drip"
KIND_KEEPALIVE: Final = "keepalive"

DEFAULT_RETRY_AFTER: Final = 1.0
DEFAULT_KEEPALIVE_COUNT: Final = 3
DEFAULT_KEEPALIVE_EVERY: Final = 0.1


class FaultSyntaxError(ValueError):
    """A fault header or profile entry that does not parse; the message names the bad item."""


@dataclass(frozen=True)
class FaultPlan:
    """What goes wrong with one request. All fields default to "nothing goes wrong".

    Event counts (``stall_at``, ``drop_after``, ``terminal_at``) count SSE events sent on this
    connection; ``None`` for ``stall_at`` / ``terminal_at`` means "in the middle of the stream",
    resolved by the server once it knows the stream's length.
    """

    delay: float = 0.0
    """Seconds to wait before the first ``response.output_text.delta`` (lifecycle events first)."""
    stall: float = 0.0
    """Seconds of silence (no bytes at all) in the middle of the stream."""
    stall_at: int | None = None
    """The stall starts after this many events have been sent."""
    drop_after: int | None = None
    """Abort the TCP connection after this many events (0: right after the response headers)."""
    end_after: int | None = None
    """End the body cleanly after this many events: a cut that looks like a normal end (only a
    missing terminal event tells it apart)."""
    status: int | None = None
    """Answer with this HTTP status and an OpenAI-shaped error body instead of a stream."""
    retry_after: float | None = None
    """For a status fault: sent as ``Retry-After`` (whole seconds) and ``retry-after-ms``."""
    terminal: Terminal | None = None
    """End the response early with an ``error`` event, ``response.failed`` or
    ``response.incomplete``. This changes the stored response, so a resume sees it too."""
    terminal_at: int | None = None
    """Sequence number of the terminal event (the events before it are sent normally)."""
    split: SplitMode | None = None
    """Cut the SSE byte stream into separate writes: every N bytes, inside every multi-byte
    UTF-8 character (``utf8``), or at seeded random offsets (``random``)."""
    drip: float = 0.0
    """Seconds to pause before every write (a slow drip)."""
    keepalive: int = 0
    """Send only this many ``: keep-alive`` comments, then end the body without any event."""
    keepalive_every: float = DEFAULT_KEEPALIVE_EVERY
    """Seconds between keep-alive comments."""
    heartbeat: float = 0.0
    """During a ``delay`` or ``stall``, send a ``: keep-alive`` comment this often (0: silence)."""
    seed: int = 0
    """Seed for the random split offsets, derived from the request number."""

    @property
    def is_none(self) -> bool:
        """True when the plan injects nothing."""
        return self == FaultPlan(seed=self.seed)


_INT_RE: Final = re.compile(r"^\d+$")
_RANGE_SEP: Final = ".."
_ITEM_NAMES: Final = (
    "none",
    "delay",
    "stall",
    "drop",
    "drop_after",
    "end_after",
    "status",
    "retry_after",
    "error_event",
    "failed",
    "incomplete",
    "split",
    "drip",
    "keepalive",
    "heartbeat",
)


def _pick_int(text: str, rng: random.Random, item: str) -> int:
    lo_s, sep, hi_s = text.partition(_RANGE_SEP)
    if not _INT_RE.match(lo_s) or (sep and not _INT_RE.match(hi_s)):
        raise FaultSyntaxError(f"{item!r}: expected a whole number or a range like 5..20")
    lo = int(lo_s)
    if not sep:
        return lo
    hi = int(hi_s)
    if hi < lo:
        raise FaultSyntaxError(f"{item!r}: range {text} is empty")
    return rng.randint(lo, hi)


def _pick_duration(text: str, rng: random.Random, item: str) -> float:
    lo_s, sep, hi_s = text.partition(_RANGE_SEP)
    try:
        lo = parse_duration(lo_s)
        hi = parse_duration(hi_s) if sep else lo
    except ValueError as exc:
        raise FaultSyntaxError(f"{item!r}: {exc}") from None
    if hi < lo:
        raise FaultSyntaxError(f"{item!r}: range {text} is empty")
    return lo if not sep else rng.uniform(lo, hi)


def parse_fault(text: str, *, rng: random.Random | None = None, seed: int = 0) -> FaultPlan:
    """Parse the fault header syntax into a plan; ranges (``5..20``) are drawn from ``rng``.

    >>> plan = parse_fault("stall=20ms@10, split=utf8")
    >>> (plan.stall, plan.stall_at, plan.split)
    (0.02, 10, 'utf8')

    Raises :class:`FaultSyntaxError` naming the offending item.
    """
    rng = rng if rng is not None else random.Random(seed)
    values: dict[str, object] = {"seed": seed}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        name, has_value, value = (s.strip() for s in item.partition("="))
        if _INT_RE.match(name) and not has_value:
            name, value, has_value = "status", name, "="
        if name not in _ITEM_NAMES:
            raise FaultSyntaxError(
                f"unknown fault {name!r} in {item!r}; known: {', '.join(_ITEM_NAMES)} "
                "or an HTTP status such as 429"
            )
        if name == "none":
            continue
        if name == "delay":
            values["delay"] = _pick_duration(value, rng, item)
        elif name == "stall":
            dur, at_sep, at = value.partition("@")
            values["stall"] = _pick_duration(dur, rng, item)
            values["stall_at"] = _pick_int(at, rng, item) if at_sep else None
        elif name == "drop":
            if has_value:
                raise FaultSyntaxError(f"{item!r}: use drop_after=N to choose where to drop")
            values["drop_after"] = -1  # resolved to the middle of the stream by the server
        elif name == "drop_after":
            values["drop_after"] = _pick_int(value, rng, item)
        elif name == "end_after":
            values["end_after"] = _pick_int(value, rng, item)
        elif name == "status":
            code = _pick_int(value, rng, item)
            if not 400 <= code <= 599:
                raise FaultSyntaxError(f"{item!r}: status must be a 4xx or 5xx code")
            values["status"] = code
        elif name == "retry_after":
            values["retry_after"] = _pick_duration(value, rng, item)
        elif name in ("error_event", "failed", "incomplete"):
            values["terminal"] = name
            values["terminal_at"] = _pick_int(value, rng, item) if has_value else None
        elif name == "split":
            if value in ("utf8", "random"):
                values["split"] = value
            else:
                size = _pick_int(value, rng, item)
                if size < 1:
                    raise FaultSyntaxError(f"{item!r}: split size must be >= 1 byte")
                values["split"] = size
        elif name == "drip":
            values["drip"] = _pick_duration(value, rng, item)
        elif name == "heartbeat":
            values["heartbeat"] = _pick_duration(value, rng, item)
        elif name == "keepalive":
            count, every_sep, every = value.partition("@")
            values["keepalive"] = (
                _pick_int(count, rng, item) if has_value else DEFAULT_KEEPALIVE_COUNT
            )
            if every_sep:
                values["keepalive_every"] = _pick_duration(every, rng, item)
    if "retry_after" in values and "status" not in values:
        raise FaultSyntaxError(f"{text!r}: retry_after needs a status, e.g. '429, retry_after=1s'")
    if values.get("status") == 429 and "retry_after" not in values:
        values["retry_after"] = DEFAULT_RETRY_AFTER
    return FaultPlan(**values)  # type: ignore[arg-type]


def request_rng(seed: int, counter: int) -> random.Random:
    """The generator for request number ``counter`` under ``seed`` (stable across Pythons)."""
    digest = hashlib.sha256(f"steadystream-fault:{seed}:{counter}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True)
class Profile:
    """A named mix of faults: each entry is ``(rate, fault header text)``; rates sum to <= 1.

    ``mix`` applies to ``POST /v1/responses``; ``resume_mix`` to streamed
    ``GET /v1/responses/{id}`` (resumes), which are clean unless a profile says otherwise.
    """

    name: str
    description: str
    mix: tuple[tuple[float, str], ...] = ()
    resume_mix: tuple[tuple[float, str], ...] = ()

    def __post_init__(self) -> None:
        for label, mix in (("mix", self.mix), ("resume_mix", self.resume_mix)):
            total = sum(rate for rate, _ in mix)
            if any(rate < 0 for rate, _ in mix) or total > 1.0 + 1e-9:
                raise ValueError(f"profile {self.name!r}: {label} rates must be >= 0, sum <= 1")
            for _, text in mix:
                parse_fault(text)  # fail at definition, not on the 1000th request

    def choose(self, seed: int, counter: int, *, resume: bool = False) -> tuple[str, FaultPlan]:
        """The fault text (``""`` for none) and plan for request ``counter`` under ``seed``."""
        rng = request_rng(seed, counter)
        u = rng.random()
        acc = 0.0
        for rate, text in self.resume_mix if resume else self.mix:
            acc += rate
            if u < acc:
                return text, parse_fault(text, rng=rng, seed=rng.getrandbits(32))
        return "", FaultPlan(seed=rng.getrandbits(32))

    def with_rates(self, scale: float) -> Profile:
        """This profile with every rate multiplied by ``scale`` (capped so the sum stays <= 1)."""
        total = sum(r for r, _ in self.mix) * scale
        factor = scale if total <= 1 else scale / total
        return dataclasses.replace(
            self,
            name=f"{self.name}x{scale:g}",
            mix=tuple((r * factor, t) for r, t in self.mix),
        )


def _p(name: str, *mix: tuple[float, str], resume: tuple = ()) -> Profile:
    # What the profile does, in words, lives in the catalog: the runbooks print it.
    return Profile(name, FAULT_PROFILES[name], tuple(mix), tuple(resume))


# Durations in the single-fault profiles are chosen to cross the default runtime policy
# (first token 3 s, stream idle 8 s), so each profile triggers its failure class against
# ss.default_spec(); tests pass shorter values through the header instead.
PROFILES: Final[Mapping[str, Profile]] = {
    p.name: p
    for p in (
        _p("none"),
        _p(
            "flaky",
            (0.05, "drop_after=6..24"),
            (0.02, "429, retry_after=1s"),
            (0.01, "503"),
        ),
        _p(
            "mixed",
            (0.03, "429, retry_after=500ms"),
            (0.02, "503"),
            (0.01, "500"),
            (0.04, "drop_after=6..24"),
            (0.01, "drop_after=1..3"),
            (0.02, "delay=500ms..4s"),
            (0.01, "stall=1s..10s"),
            (0.01, "stall=1s..10s, heartbeat=500ms"),
            (0.03, "split=random"),
            (0.02, "split=utf8"),
            (0.02, "drip=10ms..40ms"),
            (0.01, "keepalive=20@200ms"),
            (0.01, "error_event"),
            (0.005, "failed"),
            (0.005, "incomplete"),
            resume=((0.02, "drop_after=2..10"), (0.01, "404")),
        ),
        _p("rate-limit", (1.0, "429, retry_after=1s")),
        _p("outage", (1.0, "503")),
        _p("server-errors", (1.0, "500")),
        _p("drops", (1.0, "drop_after=6..24")),
        _p(
            "early-drops",
            (1.0, "drop_after=0..3"),
        ),
        _p("slow-first-token", (1.0, "delay=4s")),
        _p("stall", (1.0, "stall=10s")),
        _p("broken-chunks", (1.0, "split=random")),
        _p("utf8-splits", (1.0, "split=utf8")),
        _p("slow-drip", (1.0, "drip=50ms")),
        _p(
            "keepalive-only",
            (1.0, "keepalive=50@200ms"),
        ),
        _p("error-event", (1.0, "error_event")),
        _p("failed", (1.0, "failed")),
        _p("incomplete", (1.0, "incomplete")),
        _p(
            "resume-failure",
            (1.0, "drop_after=6..24"),
            resume=((1.0, "404"),),
        ),
    )
}
"""The built-in profiles by name (``--faults NAME``, ``Upstream(profile=NAME)``)."""

if set(PROFILES) != set(FAULT_PROFILES):
    raise ImportError(
        "the simulator's profiles and steadystream.catalog.faults.FAULT_PROFILES disagree: "
        f"{sorted(set(PROFILES) ^ set(FAULT_PROFILES))}"
    )

PROFILE_FOR_FAILURE_CLASS: Final[Mapping[str, str]] = {
    fc.id: fc.profiles[0] for fc in failure_classes() if fc.profiles
}
"""The profile that makes each server-side failure class happen. ``slow-consumer`` is the
client's own doing and ``no-traffic`` is the absence of requests, so neither has one."""


def resolve_profile(profile: str | Profile) -> Profile:
    """A :class:`Profile` from a name in :data:`PROFILES` (or a profile, returned as is)."""
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(
            f"unknown fault profile {profile!r}; known: {', '.join(sorted(PROFILES))}"
        ) from None


__all__ = [
    "PROFILES",
    "PROFILE_FOR_FAILURE_CLASS",
    "FaultPlan",
    "FaultSyntaxError",
    "Profile",
    "parse_fault",
    "request_rng",
    "resolve_profile",
]
