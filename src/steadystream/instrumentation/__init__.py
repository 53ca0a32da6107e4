"""The stream wrapper: one sans-IO core behind thin sync and async shells.

A chunk's path is shell -> provider fast path -> core -> sinks.

* :mod:`.monitor` — :class:`~.monitor.StreamMonitor`, which wires the core to the sinks, the
  providers and the policy (retry budget, backoff, ingress guard: injectable).
* :mod:`.core` — format-neutral: :mod:`.core.machine` (:class:`~.core.machine.StreamCore`, the
  state machine fed with readings and timestamps; no I/O, no clock), :mod:`.core.shell` (what
  ``monitor.wrap`` returns), :mod:`.core.watchdog`, :mod:`.core.checkpoint`,
  :mod:`.core.reassembly`.
* :mod:`.providers` — one module per wire format (OpenAI Responses, Chat Completions), the only
  place a wire event type is named; the format registry; the one exception classifier.
* :mod:`.sinks` — the sink interface (:mod:`.sinks.telemetry`), Prometheus
  (:mod:`.sinks.prometheus`) and OpenTelemetry (:mod:`.sinks.otel`).
* :mod:`.policy` — timeouts, retry, retry budget, ingress, resume, relay (flow control).
* Resilience, built on the core: :mod:`.active` (``monitor.stream``) and :mod:`.openai`
  (``responses_stream``, public).
* :mod:`.errors` — the public :class:`~.errors.StreamError` family.
"""
