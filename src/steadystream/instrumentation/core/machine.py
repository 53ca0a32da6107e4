"""The sans-IO stream core: one state machine behind every shell (sync, async, passive, active).

The core does no I/O and reads no clock. A shell feeds it events with timestamps from the
monitor's injected clock (seconds, monotonic) and acts on what it returns::

    core.on_open(t)                    # the logical stream exists (in-flight +1, span start)
    core.begin_attempt(t)              # attempt 1 (the active mode calls it once per attempt)
    core.attempt_opened(t)             # active mode only: headers are in (measures "open")
    while True:
        core.on_wait(t)                # about to block on the upstream
        ... block for at most core.next_deadline() - now ...
        timeout = core.on_item(item, t)   # -> None, or a StreamTimeout to raise
        ... hand the item to the consumer ...
    core.close(t)                      # exhausted; or close(t, abandoned=True) / close(t, error=e)

Timeouts. Deadlines are absolute times on the same clock. ``first_token`` runs from the start
of each attempt until its first content. ``stream_idle`` counts only time spent *waiting on the
upstream* since the last content: keep-alives and lifecycle events do not reset it, and time the
consumer spends holding a chunk does not use it up (that is the consumer's business, and the
buffer cap's). ``total`` runs from :meth:`on_open` for the whole logical stream. After an
attempt's first content the deadline is the idle one, which comes *earlier* than the first-token
deadline when ``first_token > stream_idle`` (reasoning models); otherwise deadlines only move
later. The shells keep one lazily re-armed timer per stream; when the core raises
:attr:`rearm` (a new attempt, its first content) they compare :meth:`next_deadline` with the
time the timer is set for, and re-arm when it is earlier. :meth:`next_deadline` is the one place
a deadline is computed; the per-item check compares with a lower bound of every deadline of the
attempt and asks for the exact one only past it. A shell that sees a deadline pass
calls :meth:`expire` (or gets the error from :meth:`on_item` / :meth:`check`) and raises it;
the error carries the last checkpoint.

Time to first token. One observation per logical stream, from :meth:`on_open`: at its first
content (``first_token``, even when an earlier attempt timed out waiting for it), or, when no
content ever came and a first-token timeout fired, at :meth:`close` with the time from the open
to the last first-token timeout (``first_token_timeout``), so the TTFT SLO counts the stream as
slow. A stream that fails before its first token any other way (an HTTP error, a drop, a total
timeout), with no first-token timeout in any of its attempts, has no time to first token and
is not observed; it counts as an error.

Phases. Wall time is split into ``open`` (measured only when the monitor opened the stream),
``first_token_wait`` (upstream wait before the first content), ``upstream_wait`` (upstream wait
after it) and ``consumer`` (time between handing an item over and being asked for the next).

Extension points for the active mode (retries, resume, flow control, ingress):
:meth:`begin_attempt`, :meth:`attempt_opened`, :meth:`on_error` (ends the attempt),
:meth:`record_retry`, :meth:`record_resume`, :meth:`record_budget_exhausted`,
:meth:`record_client_slow`, :meth:`record_timeout` (dial / tls, which happen in the client),
:attr:`checkpoint`. Recovery latency (interruption to the first content after it) is measured
by the core itself: the first content after a failed attempt records it.

Cost per content chunk: a few attribute reads of the item, one comparison with a lower bound of
every deadline (the exact deadline is computed only past it, or when a shell asks), a few float
operations and two list appends (the text and the gap). The pending text is counted, hashed and
scanned for code fences in one pass per batch, and whenever bytes, hash or a checkpoint are read
(the same results as chunk by chunk: UTF-8, sha256 and the fence tracker read the concatenated
text). Bytes and gaps reach the sinks in batches (every 1,024 chunks, at least once a second,
and at the end); a periodic checkpoint records its position, its hash state is copied when the
pending text is settled, and it becomes a :class:`~.checkpoint.Checkpoint` when it is read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ... import conventions as c
from .. import errors as e
from ..core.checkpoint import Checkpoint
from ..core.reassembly import FenceTracker, json_problem
from ..providers.base import (
    CONTENT,
    END,
    ERROR,
    KEEPALIVE,
    STARTED,
    UNKNOWN,
    Reading,
    ResponseMeta,
)
from ..providers.failures import error_class as classify_exception
from ..providers.registry import feed

if TYPE_CHECKING:
    from ...spec import Spec
    from ..sinks.telemetry import StreamObserver

__all__ = ["CorePolicy", "StreamCore"]

_INF = float("inf")
# Bytes and gaps reach the sinks in batches: when this many gaps piled up, at least every
# _FLUSH_EVERY seconds while content flows, and at the end (exact totals). A model streams tens
# to hundreds of chunks a second, so the timed flush comes first; the count bounds what a
# faster stream holds (its texts and gaps, a few tens of KiB). A flush is the per-chunk path's
# dearest step between a live client's events (its code and data are out of the CPU's caches
# by then): at 64 chunks, flushes were a fifth to a quarter of ``wrap``'s end-to-end overhead
# (``benchmarks/bench_e2e.py``).
_FLUSH_GAPS = 1024
_FLUSH_EVERY = 1.0

_TIMEOUT_ERRORS: dict[str, type[e.StreamTimeout]] = {
    c.TIMEOUT_FIRST_TOKEN: e.FirstTokenTimeout,
    c.TIMEOUT_IDLE: e.IdleTimeout,
    c.TIMEOUT_TOTAL: e.TotalTimeout,
}


@dataclass(frozen=True, slots=True)
class CorePolicy:
    """The part of the spec the core and its shells enforce (seconds; ``checkpoint_every`` in
    chunks; ``max_event_bytes``: the cap on an SSE line or event of a byte body)."""

    first_token: float = 3.0
    idle: float = 8.0
    total: float = 45.0
    checkpoint_every: int = 16
    max_event_bytes: int = 8 * 1024 * 1024

    @classmethod
    def from_spec(cls, spec: Spec) -> CorePolicy:
        """Read ``spec.stream.timeouts``, ``spec.stream.checkpoint`` and
        ``spec.stream.max_event_bytes``."""
        t = spec.stream.timeouts
        return cls(
            first_token=t.first_token,
            idle=t.stream_idle,
            total=t.total,
            checkpoint_every=spec.stream.checkpoint.every,
            max_event_bytes=spec.stream.max_event_bytes,
        )


class StreamCore:
    """State of one logical stream. Not thread-safe, except that :meth:`expire` may be called
    from a watchdog thread (it only sets a flag and reports once).

    ``expect_json``: the consumer asked for JSON, so the content is checked to be one complete
    JSON document at the end (this keeps the content in memory).
    """

    __slots__ = (
        "_announced",
        "_attempt_content",
        "_attempt_deadline_ft",
        "_attempt_live",
        "_bytes",
        "_chain_t",
        "_chain_w",
        "_closed",
        "_count_bytes",
        "_cp",
        "_cp_at",
        "_cp_state",
        "_ended_by_upstream",
        "_error_class",
        "_every",
        "_expired",
        "_fence",
        "_first_token_t",
        "_flush_at",
        "_flushed_bytes",
        "_ft_timeout_t",
        "_gaps",
        "_hash",
        "_hash_update",
        "_horizon",
        "_idle_chunk",
        "_idle_used",
        "_info",
        "_interrupted_at",
        "_json_parts",
        "_last_content_t",
        "_last_return_t",
        "_next_checkpoint",
        "_next_mark",
        "_obs",
        "_open_measured",
        "_opening",
        "_pending",
        "_ph_consumer",
        "_ph_first",
        "_ph_open",
        "_ph_pool",
        "_ph_queue",
        "_ph_wait",
        "_policy",
        "_special",
        "_t_attempt",
        "_t_open",
        "_t_wait",
        "_total_deadline",
        "_waiting",
        "attempt",
        "chunks",
        "lag_excuse",
        "outcome",
        "rearm",
        "response_id",
        "sequence_number",
    )

    def __init__(
        self,
        policy: CorePolicy,
        observer: StreamObserver,
        *,
        expect_json: bool = False,
    ) -> None:
        self._policy = policy
        self._obs = observer
        self._every = policy.checkpoint_every
        # Running sha256 of the delivered content (its update bound once: per-chunk path).
        self._hash = hashlib.sha256()
        self._hash_update = self._hash.update
        self._bytes = 0
        self._flushed_bytes = 0
        # False in relay mode: the relay counts the bytes its consumer takes (see below).
        self._count_bytes = True
        self._special = True
        # The first chunk has no gap: the gaps reach _FLUSH_GAPS at the next one.
        self._next_mark = min(policy.checkpoint_every, _FLUSH_GAPS + 1)
        self._fence = FenceTracker()
        self._json_parts: list[str] | None = [] if expect_json else None
        # Content not yet hashed, counted or scanned for fences: settled in one pass at every
        # checkpoint and flush (and whenever bytes, hash or checkpoint are read), so a chunk
        # costs a list append here, not an encode, a hash update and a fence scan.
        self._pending: list[str] = []
        self._gaps: list[float] = []
        self._flush_at = _INF
        #: Content chunks delivered so far (read-only outside the core).
        self.chunks = 0
        self._next_checkpoint = self._every
        # The last checkpoint: taken every N chunks as raw state (a hash copy), turned into a
        # Checkpoint only when someone reads it, so the per-chunk path never pays for it.
        self._cp: Checkpoint | None = None
        self._cp_state: tuple[int, Any, int, int | None, str | None] | None = None
        # A checkpoint taken while its content is still pending: (how many pending texts it
        # covers, chunks, sequence number, response id); its hash is taken at the next settle.
        self._cp_at: tuple[int, int, int | None, str | None] | None = None
        self.sequence_number: int | None = None
        self.response_id: str | None = None
        #: Number of the current attempt (0 before :meth:`begin_attempt`).
        self.attempt = 0
        #: Set by :meth:`close`: one of conventions.OUTCOMES.
        self.outcome: str | None = None
        self._t_open = 0.0
        self._total_deadline = _INF
        self._t_attempt = 0.0
        self._attempt_content = False
        self._attempt_live = False
        self._attempt_deadline_ft = _INF
        self._open_measured = False
        self._opening = False
        self._first_token_t: float | None = None
        # When the last first-token timeout of the logical stream fired (None: none did).
        self._ft_timeout_t: float | None = None
        self._last_content_t = 0.0
        self._last_return_t: float | None = None
        # The consumer time of a run of content items, each after one wait that began after
        # the previous item's return, is summed at the run's end, not per item: from
        # _chain_t (the run's first item) to the last item's return, less the upstream wait
        # since then (_ph_wait less _chain_w). None: no run open. See _settle_consumer.
        self._chain_t: float | None = None
        self._chain_w = 0.0
        self._t_wait = 0.0
        self._waiting = False
        # Upstream wait since the last content (keep-alives do not reset it): valid while no
        # content came since it was counted, i.e. while _idle_chunk == chunks.
        self._idle_used = 0.0
        self._idle_chunk = 0
        # No deadline can have passed before this time (a lower bound of every deadline of
        # the attempt): the per-item check is one comparison; past it, the exact deadline
        # (_next_deadline) decides. -inf once a timeout fired.
        self._horizon = _INF
        #: True when the deadline may have come earlier than a shell's pending look (a new
        #: attempt, or its first content moving it from first-token to idle): the shell compares
        #: next_deadline() with its look before the next wait, and clears it.
        self.rearm = True
        self._expired: e.StreamTimeout | None = None
        self._interrupted_at: float | None = None
        self._error_class: str | None = None
        self._ended_by_upstream = False
        # What the upstream reported about the response (usage, finish reasons, model); made
        # on the first report, so a stream without any pays nothing.
        self._info: _ResponseInfo | None = None
        self._announced = False
        #: Asked when a first-token or idle deadline is found passed: does this process's own
        #: lag excuse it? (a :class:`~.watchdog.LagExcuse`; ``None``: never.)
        self.lag_excuse: Callable[[str], tuple[float, float] | None] | None = None
        self._closed = False
        self._ph_open = 0.0
        # Upstream wait, all of it; and the part of it before the first content (taken at
        # the first content): the first_token_wait and upstream_wait phases at the end.
        self._ph_wait = 0.0
        self._ph_first = 0.0
        self._ph_consumer = 0.0
        self._ph_queue: float | None = None
        self._ph_pool: float | None = None

    # ------------------------------------------------------------------ lifecycle

    def on_open(self, t: float, queued: float | None = None) -> None:
        """The logical stream starts now: TTFT and the total budget count from ``t``, or from
        ``queued`` seconds earlier when it waited that long in the admission queue (its
        ``queue`` phase; ``None``: the guard has no queue)."""
        self._ph_queue = queued
        if queued:
            t -= queued
        self._t_open = t
        self._total_deadline = t + self._policy.total
        self._horizon = min(self._horizon, self._total_deadline)
        self.rearm = True
        self._obs.started(t)

    def begin_attempt(self, t: float) -> int:
        """Start the next attempt at ``t``; returns its number (1-based).

        The first-token budget restarts; the idle budget is fresh. A failure of an earlier
        attempt no longer decides the outcome: the last attempt does.
        """
        if self._attempt_live:
            self.end_attempt(t)
        if self._info is not None:
            self._info.next_request()
        self.attempt += 1
        self._attempt_live = True
        self._error_class = None
        self._t_attempt = t
        self._attempt_content = False
        self._special = True
        self._attempt_deadline_ft = t + self._policy.first_token
        self._idle_used = 0.0
        self._idle_chunk = self.chunks
        if self._waiting:  # a wait dropped: the consumer time before it still counts
            self._consumer_until(self._t_wait)
        else:
            self._settle_consumer()
        self._waiting = False
        if self._expired is None:
            self._horizon = min(self._attempt_deadline_ft, self._total_deadline, self._flush_at)
        self.rearm = True
        self._last_return_t = None
        self._obs.attempt_started(self.attempt, t)
        return self.attempt

    def opening(self, t: float) -> None:
        """The monitor is about to open the attempt's upstream: like :meth:`on_wait` (the
        attempt's first-token or total deadline bounds the open), but the time counts as the
        ``open`` phase also when the open fails (a refused connection is the network's time,
        not the model's)."""
        self._consumer_until(t)
        self.on_wait(t)
        self._opening = True

    def attempt_opened(self, t: float) -> None:
        """The monitor opened the upstream (response headers in): time since
        :meth:`begin_attempt` counts as the ``open`` phase."""
        self._settle_consumer()
        self._opening = False
        self._ph_open += t - self._t_attempt
        self._open_measured = True
        self._last_return_t = t

    def pool_waited(self, seconds: float) -> None:
        """The attempt's request waited ``seconds`` for a pooled connection (its client
        measured it, see :mod:`..policy.pool`): the stream's ``pool`` phase, summed over its
        attempts, a part of ``open``."""
        self._ph_pool = (self._ph_pool or 0.0) + max(0.0, seconds)

    def end_attempt(self, t: float, error_class: str | None = None) -> None:
        """End the current attempt (``error_class`` when it failed). A failed attempt marks
        an interruption: the next content records recovery latency."""
        if not self._attempt_live:
            return
        self._attempt_live = False
        self._account_wait(t)
        if error_class is not None:
            self._checkpoint_event()
            if self._interrupted_at is None:
                self._interrupted_at = t
                self._special = True
        self._obs.attempt_ended(self.attempt, t, error_class)

    # ------------------------------------------------------------------ items

    def on_wait(self, t: float) -> None:
        """The shell is about to block on the upstream. (Its deadline is not computed here:
        :meth:`next_deadline` answers when asked, and items compare with a lower bound.)

        Two attribute stores and nothing else, so that the shells' per-item loops may do them
        inline (``_t_wait`` first, then ``_waiting``: a watchdog thread reads them in that
        order's reverse): the consumer's time since the last item, from its return to this
        wait's start, is counted when the wait ends (:meth:`_wait_ended`, or inline in
        :meth:`on_content`)."""
        self._t_wait = t
        self._waiting = True

    def _wait_ended(self, t: float) -> float:
        """The current wait ended at ``t`` (an item, an error, the end): counts the consumer
        time before it and returns how long the upstream was waited for."""
        tw = self._t_wait
        self._waiting = False
        self._consumer_until(tw)
        w = t - tw
        self._ph_wait += w
        return w

    def next_deadline(self) -> float:
        """When the current wait must end (``inf`` when nothing bounds it). Valid after
        :meth:`on_wait`. Earlier than a previously returned value only once per attempt: at
        its first content, when the idle budget ends before the first-token one (the core
        sets :attr:`rearm` then).

        The one place deadlines are computed: ``total`` from the open, ``first_token`` from
        the attempt's start until its first content, then ``stream_idle`` from the start of
        the wait, less the upstream wait already spent since the last content."""
        return self._next_deadline()[0]

    def _next_deadline(self) -> tuple[float, str]:
        total = self._total_deadline
        if self._attempt_content:
            d = self._t_wait + self._idle_left()
            if d < total:
                return d, c.TIMEOUT_IDLE
        elif self._attempt_deadline_ft < total:
            return self._attempt_deadline_ft, c.TIMEOUT_FIRST_TOKEN
        return total, c.TIMEOUT_TOTAL

    def _consumer_until(self, t: float) -> None:
        """The consumer held the last item from its return until ``t`` (a wait's start, an
        open, the end): count that time, none when no item was returned since or it came after
        ``t`` (no wait began since the return). The general path; on_content inlines it."""
        self._settle_consumer()
        lr = self._last_return_t
        if lr is not None and lr <= t:
            self._ph_consumer += t - lr
        self._last_return_t = None

    def _settle_consumer(self) -> None:
        """End the open run of items (see _chain_t): add its consumer time. Called before
        anything else reads or moves _last_return_t, _ph_wait or _ph_consumer."""
        c0 = self._chain_t
        if c0 is not None:
            self._chain_t = None
            lr = self._last_return_t  # the run's last item (never None while a run is open)
            if lr is not None:
                self._ph_consumer += (lr - c0) - (self._ph_wait - self._chain_w)

    def _idle_left(self) -> float:
        if self._idle_chunk == self.chunks:
            return self._policy.idle - self._idle_used
        return self._policy.idle

    def _add_idle(self, w: float) -> None:
        """``w`` seconds of upstream wait ended without content (a keep-alive, an error)."""
        if self._idle_chunk != self.chunks:
            self._idle_chunk = self.chunks
            self._idle_used = 0.0
        self._idle_used += w

    def _horizon_after(self, t: float) -> float:
        """The horizon after a sign of life at ``t`` that restarts the idle budget: no
        deadline of the attempt comes sooner; nor does the timed flush, so that on_content
        compares a chunk's time with one number for both."""
        return min(t + self._policy.idle, self._total_deadline, self._flush_at)

    def _late(self, t: float) -> e.StreamTimeout | None:
        """An item came past the deadline horizon: the timeout to raise if a deadline really
        passed, else ``None`` (and the horizon moves on)."""
        if self._expired is not None:
            return self._expired
        if self._waiting:
            if t > self._next_deadline()[0]:
                return self.deadline_passed(t)
        elif t > self._total_deadline:
            # No wait since the last item (readings of one byte chunk): only the total budget.
            return self._expire_as(c.TIMEOUT_TOTAL, t)
        return None

    def earliest_deadline(self, now: float) -> float:
        """While the consumer holds an item: the earliest the next wait's deadline can be, if
        it began at ``now`` (for a timer that sleeps until a deadline may have passed)."""
        d = now + self._idle_left() if self._attempt_content else self._attempt_deadline_ft
        return min(d, self._total_deadline)

    @property
    def waiting(self) -> bool:
        """True between :meth:`on_wait` and the next item, error or close."""
        return self._waiting

    def on_item(self, item: Any, t: float) -> e.StreamTimeout | None:
        """An upstream item arrived at ``t``. Returns a timeout to raise when a deadline passed
        before it came (the item must then not be delivered). The item is read by the provider
        layer (:func:`~..providers.registry.feed`): its format's fast path, which calls
        :meth:`on_content`, else :meth:`on_reading`. The shells call the fast path themselves."""
        return feed(self, item, t)  # type: ignore[no-any-return]

    def on_content(
        self, text: str, sequence_number: int | None, t: float
    ) -> e.StreamTimeout | None:
        """A content delta of ``text`` (not empty) arrived at ``t``: the per-chunk path. Like
        :meth:`on_reading` with a content reading, minus the reading.

        The shells' per-item loops run its steady case inline (``SyncStreamWrapper._items``,
        ``AsyncStreamWrapper._aitems``): a chunk before the horizon, after a wait, inside a
        run of items, not special. A change here is made there too;
        ``tests/test_shell_steady.py`` checks that both leave the same."""
        if t >= self._horizon:  # rare: a deadline may have passed, or the timed flush is due
            exp = self._late(t)
            if exp is not None:
                return exp
            # On time. Every later deadline of the attempt is at least an idle budget after
            # its last content, which this is.
            self._horizon = self._horizon_after(t)
            if t >= self._flush_at:
                self._next_mark = 0  # the timed flush is due: with this chunk
        if self._waiting:  # _wait_ended(), inlined; the consumer time is summed per run
            self._waiting = False
            tw = self._t_wait
            self._ph_wait += t - tw
            if self._chain_t is None:  # a run of items starts here
                lr = self._last_return_t
                if lr is not None and lr <= tw:
                    self._ph_consumer += tw - lr
                self._chain_t = t
                self._chain_w = self._ph_wait
        elif self._chain_t is not None:  # no wait before this item: the run ends
            self._settle_consumer()
        self._last_return_t = t
        if sequence_number is not None:
            self.sequence_number = sequence_number
        # Keep the rest to plain attribute updates; rare work is behind _special (first
        # content, recovery) and _next_mark (checkpoints, flushes: bytes, hash and fences).
        self._pending.append(text)
        if self._special:
            self._special_content(t)
        else:
            self._gaps.append((t - self._last_content_t) * 1000.0)
        self._last_content_t = t
        self.chunks += 1
        if self.chunks >= self._next_mark:
            self._mark(t)
        return None

    def on_reading(self, r: Reading, t: float) -> e.StreamTimeout | None:
        """Like :meth:`on_item` for an item already read (by the provider layer, or by a shell
        from SSE bytes)."""
        if t > self._horizon:
            exp = self._late(t)
            if exp is not None:
                return exp
        if r.response_id is not None and r.response_id != self.response_id:
            self.response_id = r.response_id
            self._obs.response_id(r.response_id)
        kind = r.kind
        if kind == CONTENT:
            if r.meta is not None:  # rare: the last text and its finish reason in one item
                self.record_meta(r.meta)
            return self.on_content(r.text, r.sequence_number, t)
        if r.meta is not None:
            self.record_meta(r.meta)
        self._settle_consumer()
        if self._waiting:
            self._add_idle(self._wait_ended(t))
        self._last_return_t = t
        if r.sequence_number is not None:
            self.sequence_number = r.sequence_number
        if kind == UNKNOWN:
            # An item no wire format knows: proof that the attempt is alive. The first-token
            # clock stops and the idle clock restarts, so a flowing stream of an unknown shape
            # is timed (idle, total) but never cut for being unknown; it is not content.
            if not self._attempt_content:
                self._attempt_content = True
                self.rearm = True
            self._idle_used = 0.0
            self._idle_chunk = self.chunks
            if self._expired is None:
                self._horizon = self._horizon_after(t)
        elif kind == STARTED:
            self._announced = True
        elif kind == END:
            self._ended_by_upstream = True
        elif kind == ERROR and self._error_class is None:
            self._error_class = r.error_class
        return None

    def record_meta(self, meta: ResponseMeta) -> None:
        """The upstream reported usage, finish reasons or the response model (read from a
        lifecycle item by :meth:`on_reading`; also called directly for an item the consumer
        never sees, such as a continuation's own ``message_start``). Reported to the sinks at
        the end, in ``ended``'s ``info``."""
        info = self._info
        if info is None:
            info = self._info = _ResponseInfo()
        info.take(meta)

    def on_keepalive(self, t: float) -> None:
        """A keep-alive (SSE comment) arrived: proof of life, but not content."""
        self.on_reading(_KEEPALIVE_READING, t)

    def _special_content(self, t: float) -> None:
        # First content of the stream, of an attempt, or after an interruption.
        if not self._attempt_content:
            # The deadline becomes the idle one: possibly earlier than the first-token one.
            self._attempt_content = True
            self.rearm = True
        if self._first_token_t is None:
            self._ph_first = self._ph_wait
            self._first_token_t = t
            self._flush_at = t + _FLUSH_EVERY
            self._obs.first_token(t - self._t_open, t)
        else:
            self._gaps.append((t - self._last_content_t) * 1000.0)
        if self._expired is None:
            self._horizon = self._horizon_after(t)
        if self._interrupted_at is not None:
            self._obs.recovery((t - self._interrupted_at) * 1000.0)
            self._interrupted_at = None
        self._special = False

    def _settle(self) -> None:
        """Count, hash and fence-scan the content not yet settled: one join, one encode, one
        hash update and one scan for all of it (two when a checkpoint falls inside it, whose
        hash state is copied in between). The results are those of chunk by chunk work, since
        UTF-8, sha256 and the fence tracker all read the concatenated text."""
        pending = self._pending
        cp_at = self._cp_at
        if cp_at is not None:
            self._cp_at = None
            k = cp_at[0]
            if k:
                self._take(pending[0] if k == 1 else "".join(pending[:k]))
                del pending[:k]
            self._cp_state = (self._bytes, self._hash.copy(), cp_at[1], cp_at[2], cp_at[3])
        n = len(pending)
        if n:
            self._take(pending[0] if n == 1 else "".join(pending[:n]))
            del pending[:n]  # not clear(): nothing appended meanwhile is dropped

    def _take(self, text: str) -> None:
        data = text.encode("utf-8", "surrogatepass")
        self._hash_update(data)
        self._bytes += len(data)
        self._fence.feed(text)
        if self._json_parts is not None:
            self._json_parts.append(text)

    def _mark(self, t: float) -> None:
        """Every few chunks: a checkpoint when due (its position only: the hash state is
        copied when the pending content is settled, at the next flush or read), and a flush
        of the batched measurements."""
        if self.chunks >= self._next_checkpoint:
            self._next_checkpoint += self._every
            # A previous checkpoint still pending is superseded (it was never read).
            self._cp_at = (
                len(self._pending),
                self.chunks,
                self.sequence_number,
                self.response_id,
            )
            self._cp = None
        if len(self._gaps) >= _FLUSH_GAPS or t >= self._flush_at:
            self._flush_at = t + _FLUSH_EVERY
            self._flush()
        # The next checkpoint, or the chunk whose gap fills the batch (one gap per chunk).
        to_fill = max(1, _FLUSH_GAPS - len(self._gaps))
        self._next_mark = min(self._next_checkpoint, self.chunks + to_fill)

    def _snapshot(self) -> Checkpoint:
        self._settle()
        return Checkpoint(
            self._bytes,
            self._hash.copy().hexdigest(),
            self.chunks,
            self.sequence_number,
            self.response_id,
        )

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The last checkpoint: every ``checkpoint_every`` content chunks, and whenever one was
        taken for an error or the end (``None`` before the first content)."""
        cp = self._cp
        if cp is None and self._cp_at is not None:
            self._settle()
        if cp is None and self._cp_state is not None:
            nbytes, h, chunks, seq, rid = self._cp_state
            cp = self._cp = Checkpoint(nbytes, h.hexdigest(), chunks, seq, rid)
            self._cp_state = None
        return cp

    def _current(self) -> Checkpoint:
        cp = self.checkpoint
        if cp is None or cp.chunks != self.chunks or cp.sequence_number != self.sequence_number:
            cp = self._cp = self._snapshot()
            self._cp_state = None
        return cp

    def _checkpoint_event(self) -> None:
        """Tell the sinks the checkpoint at a moment that matters (a failure, the end)."""
        if self.chunks:
            self._obs.checkpoint(self._current())

    def _flush(self) -> None:
        self._settle()
        n = self._bytes - self._flushed_bytes
        if n or self._gaps:
            gaps = self._gaps
            self._gaps = []
            self._flushed_bytes = self._bytes
            self._obs.content(n if self._count_bytes else 0, gaps)

    def count_bytes_on_delivery(self) -> Callable[[int], None]:
        """Relay mode: ``stream_bytes_total`` counts content bytes the *consumer* took, not the
        bytes read from the upstream (a cut slow consumer never gets the backlog).

        Bytes read so far are reported now (they reached whoever read them); later batches
        carry gaps only. Returns the function the relay calls with delivered bytes; it keeps
        reporting after :meth:`close`, since the consumer drains the buffer after the upstream
        ended."""
        self._flush()
        self._count_bytes = False
        obs = self._obs

        def delivered(nbytes: int) -> None:
            if nbytes:
                obs.content(nbytes, ())

        return delivered

    def current_checkpoint(self) -> Checkpoint:
        """A checkpoint of everything delivered so far (taken now if content arrived since the
        last one; it also becomes :attr:`checkpoint`)."""
        return self._current()

    @property
    def content_bytes(self) -> int:
        """Content bytes delivered so far."""
        self._settle()
        return self._bytes

    # ------------------------------------------------------------------ deadlines

    def check(self, t: float) -> e.StreamTimeout | None:
        """The timeout to raise if the current wait's deadline has passed at ``t``."""
        if self._expired is not None:
            return self._expired
        if self._waiting and t >= self._next_deadline()[0]:
            return self.deadline_passed(t)
        return None

    def deadline_passed(self, t: float) -> e.StreamTimeout | None:
        """The current deadline is found passed at ``t`` (by a timer, the watchdog, or an item
        that came after it): the timeout to raise, or ``None`` when this process's own lag
        excuses it (:attr:`lag_excuse`) and the deadline moved out instead, so an item that is
        in fact there is read. Safe from a watchdog thread."""
        if self._expired is not None:
            return self._expired
        deadline, phase = self._next_deadline()
        excuse = self.lag_excuse
        if excuse is not None and phase != c.TIMEOUT_TOTAL:
            verdict = excuse(phase)
            if verdict is not None:
                grace, lag = verdict
                until = min(max(t, deadline) + grace, self._total_deadline)
                if grace > 0 and until > t:
                    self._extend(phase, until)
                    return None
                if grace <= 0:
                    return self._expire_as(phase, t, lag=lag)
        return self._expire_as(phase, t)

    def _extend(self, phase: str, until: float) -> None:
        """Move the current first-token or idle deadline out to ``until`` (deadlines only move
        later here, so the horizon stays a lower bound of every deadline)."""
        if phase == c.TIMEOUT_FIRST_TOKEN:
            self._attempt_deadline_ft = until
        else:
            # The idle deadline is the wait's start plus the idle budget left: leave exactly
            # ``until - t_wait`` of it (the extra is the lag's grace, not the upstream's).
            self._idle_chunk = self.chunks
            self._idle_used = self._policy.idle - (until - self._t_wait)

    def expire(self, t: float) -> e.StreamTimeout:
        """The current deadline passed: record the timeout once and return the error to raise
        (with the checkpoint attached). Idempotent; safe from a watchdog thread."""
        exp = self._expired
        if exp is not None:
            return exp
        return self._expire_as(self._next_deadline()[1], t)

    def _expire_as(self, phase: str, t: float, *, lag: float | None = None) -> e.StreamTimeout:
        """Record the ``phase`` timeout at ``t``. With ``lag`` (a first-token or idle deadline
        that ran out while this process lagged, see :meth:`deadline_passed`), the error is
        :class:`~..errors.LagTimeout`, which is not counted as a timeout of that phase: the
        upstream is not to blame."""
        budget = {
            c.TIMEOUT_FIRST_TOKEN: self._policy.first_token,
            c.TIMEOUT_IDLE: self._policy.idle,
            c.TIMEOUT_TOTAL: self._policy.total,
        }[phase]
        # First: from a watchdog thread, an item the reader gets from now on takes the exact
        # check (every item compares with the horizon) while the checkpoint settles content.
        self._horizon = -_INF
        cp = self._current() if self.chunks else None
        exc: e.StreamTimeout
        if lag is not None and phase != c.TIMEOUT_TOTAL:
            exc = e.LagTimeout(
                f"{phase} timeout: budget {budget:g}s exceeded while this process lagged "
                f"{lag * 1000:.0f} ms",
                phase=phase,
                lag=lag,
                checkpoint=cp,
            )
        else:
            exc = _TIMEOUT_ERRORS[phase](
                f"{phase} timeout: budget {budget:g}s exceeded", checkpoint=cp
            )
        self._expired = exc
        if phase == c.TIMEOUT_FIRST_TOKEN:
            self._ft_timeout_t = t
        self._checkpoint_event()
        if not isinstance(exc, e.LagTimeout):
            self._obs.timeout(phase, t)
        return exc

    @property
    def expired(self) -> e.StreamTimeout | None:
        """The timeout that fired in the current attempt, if any."""
        return self._expired

    def clear_expired(self) -> None:
        """Forget a fired first-token / idle timeout so a retry can start a new attempt (the
        active mode calls this before :meth:`begin_attempt`). A total timeout stays."""
        if self._expired is not None and not isinstance(self._expired, e.TotalTimeout):
            self._expired = None
            self._horizon = -_INF  # exact checks until the next begin_attempt sets it

    # ------------------------------------------------------------------ failures and hooks

    def on_error(self, exc: BaseException, t: float) -> str:
        """The upstream raised ``exc`` at ``t``: end the attempt as failed; returns its
        ``error_class``. A fired timeout wins over whatever the closed upstream raised."""
        error_class = (
            self._expired.error_class if self._expired is not None else classify_exception(exc)
        )
        self.end_attempt(t, error_class)
        self._error_class = error_class
        return error_class

    def record_retry(self, reason: str, t: float) -> None:
        """A retry for ``reason`` (conventions.RETRY_REASONS) will start the next attempt."""
        # The failed attempt no longer decides the stream's outcome: the retry either recovers
        # it, or ends the stream with its own error (or abandoned, if the consumer stops first).
        self._error_class = None
        self._obs.retry(reason, self.attempt + 1, t)

    def record_resume(self, ok: bool, t: float) -> None:
        """A resume from :attr:`checkpoint` succeeded (nothing lost or duplicated) or failed."""
        self._obs.resume(ok, t, self.checkpoint)

    def record_budget_exhausted(self, t: float) -> None:
        """A retry was refused: the retry budget is spent."""
        self._obs.budget_exhausted(t)

    def record_client_slow(self, t: float, *, terminated: bool, dropped_bytes: int = 0) -> None:
        """The consumer fell behind the buffer cap (flow control)."""
        self._obs.client_slow(terminated, dropped_bytes, t)

    def record_timeout(self, phase: str, t: float) -> None:
        """A timeout the core does not enforce itself (``dial``, ``tls``) happened."""
        self._obs.timeout(phase, t)

    @property
    def policy(self) -> CorePolicy:
        """What this stream enforces (timeouts, checkpoint interval, SSE event cap)."""
        return self._policy

    def record_reassembly_error(self, kind: str, detail: str = "") -> None:
        """A reassembly problem found by a shell (``utf8``, ``sse`` or ``json`` on byte input)."""
        self._obs.reassembly_error(kind, detail)

    # ------------------------------------------------------------------ end

    @property
    def closed(self) -> bool:
        return self._closed

    def close(
        self,
        t: float,
        *,
        abandoned: bool = False,
        error: BaseException | None = None,
        error_class: str | None = None,
    ) -> str:
        """End the logical stream (idempotent); returns the outcome.

        Exhausted (the default): ``ok``, unless the upstream reported a failure in-band (an
        item read as an error) or a stream that announced its start stopped before its
        terminal item. ``abandoned=True``: the consumer stopped early
        (``break``, ``close()``, cancellation, garbage collection). ``error``: the stream
        failed with this exception.
        """
        if self._closed:
            return self.outcome or c.OUTCOME_ERROR
        self._closed = True
        try:
            return self._finish(t, abandoned, error, error_class)
        finally:
            self._obs = _NULL_OBSERVER  # nothing after the end reaches a sink

    def _finish(
        self, t: float, abandoned: bool, error: BaseException | None, error_class: str | None
    ) -> str:
        obs = self._obs
        if self._waiting:
            self._account_wait(t)
        else:
            self._consumer_until(t)
        if error is not None and error_class is None:
            if self._expired is not None:
                error_class = self._expired.error_class
            elif self._error_class is not None:
                error_class = self._error_class
            else:
                error_class = classify_exception(error)
        if error_class is None:
            # An in-band failure decides the outcome even if the consumer then stopped early
            # (breaking out on an ``error`` event is the usual way to handle one).
            error_class = self._error_class
            if (
                error_class is None
                and not abandoned
                and self._announced
                and not self._ended_by_upstream
            ):
                error_class = c.ERROR_CLASS_NETWORK
        if error_class is not None:
            outcome = c.OUTCOME_ERROR
        elif abandoned:
            outcome = c.OUTCOME_ABANDONED
        else:
            outcome = c.OUTCOME_OK
        self.outcome = outcome
        if self.chunks:
            obs.checkpoint(self._current())
        if self._attempt_live:
            self._attempt_live = False
            obs.attempt_ended(self.attempt, t, error_class)
        self._flush()
        if outcome == c.OUTCOME_OK:
            # Completeness checks only make sense on content the upstream said is whole.
            if self._fence.unclosed:
                obs.reassembly_error(c.REASSEMBLY_FENCE, f"unclosed {self._fence.open_fence}")
            if self._json_parts is not None:
                problem = json_problem("".join(self._json_parts))
                if problem is not None:
                    obs.reassembly_error(c.REASSEMBLY_JSON, problem)
        if self._first_token_t is None and self._ft_timeout_t is not None:
            # No content ever came and a first-token timeout cut the wait: the stream waited
            # that long for its first token (from the open, as time to first token counts).
            obs.first_token_timeout(self._ft_timeout_t - self._t_open, self._ft_timeout_t)
        phases: dict[str, float] = {}
        if self._ph_queue is not None:
            phases[c.PHASE_QUEUE] = self._ph_queue * 1000.0
        if self._ph_pool is not None:
            phases[c.PHASE_POOL] = self._ph_pool * 1000.0
        if self._open_measured:
            phases[c.PHASE_OPEN] = self._ph_open * 1000.0
        if self._first_token_t is not None:
            phases[c.PHASE_FIRST_TOKEN_WAIT] = self._ph_first * 1000.0
            phases[c.PHASE_UPSTREAM_WAIT] = (self._ph_wait - self._ph_first) * 1000.0
        else:
            phases[c.PHASE_FIRST_TOKEN_WAIT] = self._ph_wait * 1000.0
        phases[c.PHASE_CONSUMER] = self._ph_consumer * 1000.0
        info: dict[str, Any] = {
            "bytes": self._bytes,
            "chunks": self.chunks,
            "attempts": self.attempt,
            "duration": t - self._t_open,
        }
        if self._info is not None:
            self._info.report(info)
        obs.ended(outcome, error_class, phases, t, info)
        return outcome

    def _account_wait(self, t: float) -> None:
        self._settle_consumer()
        if self._opening:
            # The open failed (or was abandoned) before attempt_opened().
            self._opening = False
            self._waiting = False
            self._ph_open += t - self._t_attempt
            self._open_measured = True
            return
        if self._waiting:
            self._add_idle(self._wait_ended(t))


class _ResponseInfo:
    """Usage, finish reasons and response model over the requests of one logical stream.

    Within a request a later report replaces an earlier one (cumulative counts); the requests
    of a stream (retries, resumes, continuations: one per attempt) add up their usage, since
    each was a request the upstream served. Finish reasons and the model are the last
    request's that reported any."""

    __slots__ = ("finish", "input", "last_finish", "model", "output", "sum_input", "sum_output")

    def __init__(self) -> None:
        self.input: int | None = None
        self.output: int | None = None
        self.sum_input: int | None = None
        self.sum_output: int | None = None
        self.finish: list[str] = []
        self.last_finish: list[str] = []
        self.model: str | None = None

    def take(self, meta: ResponseMeta) -> None:
        if meta.input_tokens is not None:
            self.input = meta.input_tokens
        if meta.output_tokens is not None:
            self.output = meta.output_tokens
        if meta.finish_reasons:
            self.finish.extend(meta.finish_reasons)
        if meta.response_model:
            self.model = meta.response_model

    def next_request(self) -> None:
        """The next attempt is a new request: fold this one's usage into the sums."""
        if self.input is not None:
            self.sum_input = (self.sum_input or 0) + self.input
            self.input = None
        if self.output is not None:
            self.sum_output = (self.sum_output or 0) + self.output
            self.output = None
        if self.finish:
            self.last_finish = self.finish
            self.finish = []

    def report(self, info: dict[str, Any]) -> None:
        """Add ``input_tokens``, ``output_tokens``, ``finish_reasons`` and ``response_model`` to
        the end ``info``, each only when the upstream reported it."""
        self.next_request()
        if self.sum_input is not None:
            info["input_tokens"] = self.sum_input
        if self.sum_output is not None:
            info["output_tokens"] = self.sum_output
        if self.last_finish:
            info["finish_reasons"] = tuple(self.last_finish)
        if self.model is not None:
            info["response_model"] = self.model


class _NullObserver:
    def __getattr__(self, name: str) -> Any:
        return _noop


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


_NULL_OBSERVER: Any = _NullObserver()
_KEEPALIVE_READING = Reading(KEEPALIVE)
