"""Shared limits: one rate limit, one retry budget and an optional concurrency cap for every
process and host running the same spec and service, held in Redis.

A per-process limit multiplies with the fleet: eight replicas of four workers each admit 32
times the configured rate and spend 32 separate retry budgets. With ``stream.shared: {url:
redis://…}`` in the spec (or ``STEADYSTREAM_REDIS_URL`` when the spec has no ``shared``
section; the spec wins), the monitor builds a :class:`SharedIngressGuard` and a
:class:`SharedRetryBudget` instead of the local ones:

* the ingress token bucket (``ingress.rate``, ``ingress.burst``) is one bucket in Redis;
* the retry budget (``retry.budget``, ``retry.min_per_second``) is one budget in Redis;
* ``shared.max_concurrent``, when set, caps open streams cluster-wide with *leases* that expire
  ``timeouts.total`` + 15 s after admission, so a process that dies holding slots frees them by
  itself; ``ingress.max_concurrent`` stays a per-process cap, checked first.

Every decision is one atomic Lua script run server-side (``EVALSHA``, falling back to ``EVAL``
when Redis answers ``NOSCRIPT``, after a restart say) that reads the clock with Redis ``TIME``,
so hosts with skewed clocks still share one timeline. Keys are
``<prefix>:{<service>}:<limit>``: the service in a hash tag keeps one service's keys together.

When Redis is unreachable, or slower than ``shared.timeout`` (50 ms by default), the decision is
taken on the process's local limits at once and the caller never sees an exception. The process
then stops asking Redis, except for one probe at most every second (``recheck``), so an outage
costs no stream a timeout. ``stream_shared_fallback_total{limit}`` counts the decisions taken
locally; one warning is logged when an outage starts and one when Redis answers again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from ... import conventions as c
from .budget import DEFAULT_TTL, BudgetStats, RetryBudget
from .ingress import IngressGuard, IngressTicket

if TYPE_CHECKING:
    from ...spec import Spec
    from ...spec.model import Shared

__all__ = [
    "ENV_URL",
    "LEASE_MARGIN",
    "RECHECK_INTERVAL",
    "SharedIngressGuard",
    "SharedRetryBudget",
    "SharedStore",
    "shared_settings",
]

log = logging.getLogger(__name__)

#: The environment variable naming the Redis URL when the spec has no ``stream.shared``.
ENV_URL: Final = "STEADYSTREAM_REDIS_URL"
#: Seconds between two attempts to reach Redis while it is down.
RECHECK_INTERVAL: Final = 1.0
#: Seconds a cluster-wide slot outlives the total timeout of the stream holding it.
LEASE_MARGIN: Final = 15.0

# Decisions the store could not take (Redis down or slow): the caller decides locally.
_DOWN: Final = object()

# Float dust from decay must not refuse a retry that whole deposits paid for (as in .budget).
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local open = 0
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  open = redis.call('ZCARD', KEYS[2])
  if open >= cap then return {-1, open} end
end
local h = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(h[1]) or burst
local ts = tonumber(h[2]) or now
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
if tokens < 1 then return {0, open} end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
if cap > 0 then
  local ttl = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[4])
  redis.call('PEXPIRE', KEYS[2], math.ceil(ttl * 1000) + 1000)
  open = open + 1
end
return {1, open}
"""

# The retry budget of .budget, server-side: deposits decay with time constant ttl, a floor
# refills at min_per_second up to min_per_second * ttl, a withdrawal spends earned tokens first.
_BUDGET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local op = ARGV[1]
local ratio, floor, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local cap = floor * ttl
local h = redis.call('HMGET', KEYS[1], 'earned', 'reserve', 'ts')
local earned = tonumber(h[1]) or 0
local reserve = tonumber(h[2]) or cap
local ts = tonumber(h[3]) or now
if now > ts then
  reserve = math.min(cap, reserve + (now - ts) * floor)
  earned = earned * math.exp(-(now - ts) / ttl)
  ts = now
end
local granted = 1
if op == 'deposit' then
  earned = earned + ratio
  redis.call('HINCRBY', KEYS[1], 'requests', 1)
elseif op == 'withdraw' then
  if earned + reserve + 1e-9 < 1 then
    granted = 0
    redis.call('HINCRBY', KEYS[1], 'refused', 1)
  else
    local take = math.min(1, earned)
    earned = earned - take
    reserve = math.max(0, reserve - (1 - take))
    redis.call('HINCRBY', KEYS[1], 'retries', 1)
  end
end
redis.call('HSET', KEYS[1], 'earned', tostring(earned), 'reserve', tostring(reserve),
  'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 10000))
local n = redis.call('HMGET', KEYS[1], 'requests', 'retries', 'refused')
return {granted, tostring(earned + reserve), tonumber(n[1]) or 0, tonumber(n[2]) or 0,
  tonumber(n[3]) or 0}
"""


def shared_settings(spec: Spec, environ: Mapping[str, str] | None = None) -> Shared | None:
    """The shared-limits settings in force: ``spec.stream.shared`` when the spec has it, else
    ``STEADYSTREAM_REDIS_URL`` (with the section's defaults) when set and not empty, else
    ``None`` (local limits only). ``environ`` defaults to ``os.environ``, read now."""
    if spec.stream.shared is not None:
        return spec.stream.shared
    env = os.environ if environ is None else environ
    url = env.get(ENV_URL, "").strip()
    if not url:
        return None
    from ...spec.model import Shared

    try:
        return Shared(url=url)
    except ValueError as exc:
        raise ValueError(f"{ENV_URL}: {exc}") from None


def _redacted(url: str) -> str:
    """``url`` without its credentials, for log lines and errors."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.netloc.rpartition("@")[2] or "localhost"
    return f"{parts.scheme}://{host}{parts.path}"


class _Script:
    """A Lua script known by its SHA1: ``EVALSHA``, and ``EVAL`` when Redis lost it."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        import hashlib

        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    def run(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return client.eval(self.source, len(keys), *keys, *args)

    async def run_async(self, client: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


ADMIT_SCRIPT: Final = _Script(_ADMIT)
BUDGET_SCRIPT: Final = _Script(_BUDGET)


class SharedStore:
    """The Redis connection behind shared limits, and what to do when Redis does not answer.

    :meth:`call` / :meth:`call_async` run one operation with a short timeout and return its
    result, or the marker ``_DOWN`` when Redis failed or was too slow: the caller then decides
    on local limits (each such decision counts once per limit through ``on_fallback``). After a
    failure the store does not ask Redis again for ``recheck`` seconds, except that the first
    caller after that interval probes it; the first success ends the outage. One warning is
    logged per outage and one on recovery.

    Needs the ``redis`` package (``pip install 'steadystream[redis]'``). Sync calls share one
    thread-safe client; async calls use one ``redis.asyncio`` client per event loop (a client
    belongs to the loop that made it).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 0.05,
        recheck: float = RECHECK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        on_fallback: Callable[[str], None] | None = None,
    ) -> None:
        try:
            import redis  # noqa: F401
        except ImportError:
            raise ImportError(
                "shared limits (stream.shared or STEADYSTREAM_REDIS_URL) need the 'redis' "
                "package: pip install 'steadystream[redis]'"
            ) from None
        self.url = url
        self.where = _redacted(url)
        self.timeout = float(timeout)
        self.recheck = float(recheck)
        self._clock = clock
        self._on_fallback = on_fallback
        self._lock = threading.Lock()
        self._down = False
        self._down_since = 0.0
        self._next_probe = 0.0
        self._client: Any = None
        # A client's connections hold its loop, so a weak mapping would never let go: clients
        # of closed loops are dropped when a new loop shows up instead.
        self._aclients: dict[asyncio.AbstractEventLoop, Any] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Decisions taken on local limits, by limit (this store's own count).
        self.fallbacks: dict[str, int] = dict.fromkeys(c.SHARED_LIMITS, 0)

    def _options(self) -> dict[str, Any]:
        return {"socket_timeout": self.timeout, "socket_connect_timeout": self.timeout}

    def _sync_client(self) -> Any:
        client = self._client
        if client is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            with self._lock:
                if self._client is None:
                    # One attempt per decision: a retry would double what an outage costs.
                    self._client = redis.Redis.from_url(
                        self.url, retry=Retry(NoBackoff(), 0), **self._options()
                    )
                client = self._client
        return client

    def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            import redis.asyncio
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            client = redis.asyncio.Redis.from_url(
                self.url, retry=Retry(NoBackoff(), 0), **self._options()
            )
            with self._lock:
                for old in [old for old in self._aclients if old.is_closed()]:
                    del self._aclients[old]
                self._aclients[loop] = client
        return client

    # ------------------------------------------------------------------ availability

    @property
    def available(self) -> bool:
        """False during an outage (between a failure and the next successful call)."""
        return not self._down

    def _usable(self) -> bool:
        if not self._down:
            return True
        with self._lock:
            if not self._down:
                return True
            now = self._clock()
            if now >= self._next_probe:
                # This caller probes; the others keep deciding locally meanwhile.
                self._next_probe = now + self.recheck
                return True
            return False

    def _succeeded(self) -> None:
        if not self._down:
            return
        with self._lock:
            if not self._down:
                return
            self._down = False
            lasted = self._clock() - self._down_since
        log.warning(
            "steadystream: shared limits: Redis at %s answers again after %.1fs; "
            "the rate limit and retry budget are cluster-wide again",
            self.where,
            lasted,
        )

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            now = self._clock()
            first = not self._down
            if first:
                self._down = True
                self._down_since = now
            self._next_probe = now + self.recheck
        if first:
            log.warning(
                "steadystream: shared limits: Redis at %s is unreachable or slower than %gms "
                "(%s: %s); using this process's local limits until it answers (retried every "
                "%gs)",
                self.where,
                self.timeout * 1000,
                type(exc).__name__,
                exc,
                self.recheck,
            )

    def fallback(self, limits: Sequence[str]) -> None:
        """Count one decision per limit taken locally; ``on_fallback`` errors are swallowed."""
        for limit in limits:
            with self._lock:
                self.fallbacks[limit] = self.fallbacks.get(limit, 0) + 1
            if self._on_fallback is not None:
                try:
                    self._on_fallback(limit)
                except Exception:
                    log.exception("steadystream: shared-limit fallback callback failed (ignored)")

    # ------------------------------------------------------------------ calls

    def call(self, op: Callable[[Any], Any]) -> Any:
        """``op(client)`` with the sync client, or ``_DOWN`` (Redis down, slow or failing)."""
        if not self._usable():
            return _DOWN
        from redis.exceptions import RedisError

        try:
            result = op(self._sync_client())
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return _DOWN
        self._succeeded()
        return result

    async def call_async(self, op: Callable[[Any], Awaitable[Any]]) -> Any:
        """``await op(client)`` with this loop's async client, or ``_DOWN``."""
        if not self._usable():
            return _DOWN
        from redis.exceptions import RedisError

        try:
            result = await op(self._async_client())
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return _DOWN
        self._succeeded()
        return result

    def fire(self, op: Callable[[Any], Any], op_async: Callable[[Any], Awaitable[Any]]) -> None:
        """Run an operation whose answer nobody waits for (freeing a lease): as a task on the
        running event loop when there is one, so it never blocks the loop; else now."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.call(op)
            return
        task = loop.create_task(self.call_async(op_async))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        """Close the sync client's connections (async clients close with their loop)."""
        client, self._client = self._client, None
        if client is not None:
            client.close()


def _keys(prefix: str, service: str, *names: str) -> tuple[str, ...]:
    return tuple(f"{prefix}:{{{service}}}:{name}" for name in names)


class SharedIngressGuard(IngressGuard):
    """An :class:`~.ingress.IngressGuard` whose token bucket (and optional concurrency cap)
    is shared through a :class:`SharedStore`.

    The per-process concurrency cap is checked first, in process (a stream may wait in the
    admission queue for a slot there); then one script takes a
    token from the shared bucket and, with ``global_max_concurrent``, a lease on a cluster-wide
    slot (a stream refused for either spends neither). With the store down, the process's own
    bucket decides and only the per-process cap holds.
    """

    def __init__(
        self,
        max_concurrent: int,
        rate: float,
        burst: int | None = None,
        *,
        store: SharedStore,
        service: str,
        prefix: str = "steadystream",
        global_max_concurrent: int | None = None,
        lease_ttl: float = 60.0,
        queue_max: int = 0,
        queue_timeout: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        on_reject: Callable[[str], None] | None = None,
        on_in_flight: Callable[[int], None] | None = None,
        shed_lag: float | None = 0.5,
        shed_retry_after: float = 1.0,
    ) -> None:
        super().__init__(
            max_concurrent,
            rate,
            burst,
            queue_max=queue_max,
            queue_timeout=queue_timeout,
            clock=clock,
            on_reject=on_reject,
            on_in_flight=on_in_flight,
            shed_lag=shed_lag,
            shed_retry_after=shed_retry_after,
        )
        if global_max_concurrent is not None and global_max_concurrent < 1:
            raise ValueError("global_max_concurrent must be at least 1")
        if lease_ttl <= 0:
            raise ValueError("lease_ttl must be positive")
        self.store = store
        self.service = service
        self.global_max_concurrent = global_max_concurrent
        self.lease_ttl = float(lease_ttl)
        self._keys = _keys(prefix, service, "rate", "leases")
        self._limits = (
            (c.LIMIT_RATE, c.LIMIT_CONCURRENCY)
            if global_max_concurrent is not None
            else (c.LIMIT_RATE,)
        )

    @classmethod
    def for_spec(
        cls,
        spec: Spec,
        shared: Shared,
        store: SharedStore,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> SharedIngressGuard:
        """The guard ``spec.stream.ingress`` and ``shared`` describe."""
        ingress = spec.stream.ingress
        return cls(
            ingress.max_concurrent,
            ingress.rate,
            ingress.burst,
            store=store,
            service=spec.service,
            prefix=shared.prefix,
            global_max_concurrent=shared.max_concurrent,
            lease_ttl=spec.stream.timeouts.total + LEASE_MARGIN,
            queue_max=ingress.queue.max if ingress.queue is not None else 0,
            queue_timeout=ingress.queue.timeout if ingress.queue is not None else 0.0,
            clock=clock,
            shed_lag=ingress.overload.lag if ingress.overload.shed else None,
            shed_retry_after=ingress.overload.retry_after,
        )

    def acquire(self) -> IngressTicket:
        """Admit one stream (one round trip to Redis, after a wait in the admission queue if
        the process is at its cap and has one) or raise :class:`~steadystream.IngressRejected`."""
        queued = self._slot()
        lease, args = self._script_args()
        try:
            result = self.store.call(lambda r: ADMIT_SCRIPT.run(r, self._keys, args))
        except BaseException:
            self._give_back()
            raise
        return self._decide(result, lease, queued)

    async def acquire_async(self) -> IngressTicket:
        """:meth:`acquire`, awaiting the queue and Redis instead of blocking the event loop."""
        queued = await self._slot_async()
        lease, args = self._script_args()
        try:
            result = await self.store.call_async(
                lambda r: ADMIT_SCRIPT.run_async(r, self._keys, args)
            )
        except BaseException:
            self._give_back()
            raise
        return self._decide(result, lease, queued)

    def _script_args(self) -> tuple[str, tuple[Any, ...]]:
        lease = uuid.uuid4().hex if self.global_max_concurrent is not None else ""
        args = (
            repr(self.rate),
            self.burst,
            self.global_max_concurrent or 0,
            lease,
            repr(self.lease_ttl),
        )
        return lease, args

    def _decide(self, result: Any, lease: str, queued: float) -> IngressTicket:
        """Holding a slot in this process: admit on Redis's answer (the local bucket's when
        Redis did not answer), or give the slot back and refuse."""
        if result is _DOWN:
            self.store.fallback(self._limits)
            with self._lock:
                reason, message = self._take_token()
            if reason is not None:
                self._give_back()
                self._refuse(reason, message)
            self._notify(self._on_in_flight, 1)
            return IngressTicket(self, queued=queued)
        status, open_now = int(result[0]), int(result[1])
        if status == 1:
            self._notify(self._on_in_flight, 1)
            return IngressTicket(self, lease or None, queued)
        self._give_back()
        if status == -1:
            self._refuse(
                c.REJECT_CONCURRENCY,
                f"too many concurrent streams across the cluster ({open_now} open, "
                f"limit {self.global_max_concurrent} shared by every process of "
                f"{self.service!r})",
            )
        self._refuse(
            c.REJECT_RATE,
            f"over the cluster-wide stream rate limit ({self.rate:g}/s, burst "
            f"{self.burst}, shared by every process of {self.service!r})",
        )

    def _release(self, ticket: IngressTicket) -> None:
        super()._release(ticket)
        lease = ticket.lease
        if lease is None:
            return
        key = self._keys[1]
        # A lease that cannot be freed now (Redis down) expires by itself.
        self.store.fire(lambda r: r.zrem(key, lease), lambda r: r.zrem(key, lease))


class SharedRetryBudget(RetryBudget):
    """A :class:`~.budget.RetryBudget` held in Redis and shared by every process of a service.

    Each deposit and withdrawal is one atomic script with the same arithmetic as the local
    budget, on Redis's clock, so ``retries <= ratio * requests + min_per_second * (ttl +
    elapsed)`` holds for the whole cluster. Deposits also go to this process's own budget, so
    that when the store is down the local fallback starts from this process's recent traffic
    rather than from nothing. :meth:`stats` counts this process's requests and decisions;
    :meth:`shared_stats` reads the cluster's.
    """

    def __init__(
        self,
        ratio: float,
        min_per_second: float,
        *,
        store: SharedStore,
        service: str,
        prefix: str = "steadystream",
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(ratio, min_per_second, ttl=ttl, clock=clock)
        self.store = store
        self.service = service
        self._keys = _keys(prefix, service, "retry-budget")

    @classmethod
    def for_spec(
        cls,
        spec: Spec,
        shared: Shared,
        store: SharedStore,
        *,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> SharedRetryBudget:
        """The budget ``spec.stream.retry`` describes, shared as ``shared`` says."""
        retry = spec.stream.retry
        return cls(
            retry.budget,
            retry.min_per_second,
            store=store,
            service=spec.service,
            prefix=shared.prefix,
            ttl=ttl,
            clock=clock,
        )

    def _args(self, op: str) -> tuple[Any, ...]:
        return (op, repr(self.ratio), repr(self.min_per_second), repr(self.ttl))

    def deposit(self) -> None:
        """Record one new logical request, in Redis and locally."""
        super().deposit()
        args = self._args("deposit")
        if self.store.call(lambda r: BUDGET_SCRIPT.run(r, self._keys, args)) is _DOWN:
            self.store.fallback((c.LIMIT_RETRY_BUDGET,))

    async def deposit_async(self) -> None:
        """:meth:`deposit`, awaiting Redis instead of blocking the event loop."""
        super().deposit()
        args = self._args("deposit")
        result = await self.store.call_async(lambda r: BUDGET_SCRIPT.run_async(r, self._keys, args))
        if result is _DOWN:
            self.store.fallback((c.LIMIT_RETRY_BUDGET,))

    def try_withdraw(self) -> bool:
        """Take one token from the cluster's budget (the local one while Redis is down)."""
        args = self._args("withdraw")
        return self._granted(self.store.call(lambda r: BUDGET_SCRIPT.run(r, self._keys, args)))

    async def try_withdraw_async(self) -> bool:
        """:meth:`try_withdraw`, awaiting Redis instead of blocking the event loop."""
        args = self._args("withdraw")
        result = await self.store.call_async(lambda r: BUDGET_SCRIPT.run_async(r, self._keys, args))
        return self._granted(result)

    def _granted(self, result: Any) -> bool:
        if result is _DOWN:
            self.store.fallback((c.LIMIT_RETRY_BUDGET,))
            return super().try_withdraw()
        granted = int(result[0]) == 1
        with self._lock:
            if granted:
                self._retries += 1
            else:
                self._refused += 1
        return granted

    def shared_stats(self) -> BudgetStats | None:
        """The cluster's counts and balance as Redis holds them (``None`` while it is down).
        Counts live as long as the budget's key: ten ``ttl`` after its last use."""
        args = self._args("peek")
        result = self.store.call(lambda r: BUDGET_SCRIPT.run(r, self._keys, args))
        if result is _DOWN:
            return None
        return BudgetStats(int(result[2]), int(result[3]), int(result[4]), float(result[1]))
