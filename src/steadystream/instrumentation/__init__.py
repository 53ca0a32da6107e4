"""The stream wrapper: one sans-IO core behind thin sync and async shells.

* :mod:`.core` — :class:`~.core.StreamCore`, the state machine (timeouts, phases, checkpoints,
  outcome) fed with events and timestamps; no I/O, no clock.
* :mod:`.shell` — what ``monitor.wrap`` returns: :class:`~.shell.SyncStreamWrapper` and
  :class:`~.shell.AsyncStreamWrapper`, plus :class:`~.shell.ByteReader` for byte bodies.
* :mod:`.monitor` — :class:`~.monitor.StreamMonitor`, which wires the core to the sinks.
* :mod:`.events`, :mod:`.reassembly`, :mod:`.checkpoint` — duck-typed reading of items, UTF-8 /
  SSE / fence / JSON reassembly, checkpoints with an incremental hash.
* :mod:`.telemetry` (the sink interface), :mod:`.metrics` (Prometheus), :mod:`.otel`
  (OpenTelemetry metrics and spans), :mod:`.watchdog`, :mod:`.timeouts` (HTTP client timeouts).
* Resilience, built on the core: :mod:`.active` (``monitor.stream``), :mod:`.openai`
  (``responses_stream``), :mod:`.relay` (``monitor.relay``), :mod:`.retry`, :mod:`.budget`,
  :mod:`.resume`, :mod:`.ingress`.
"""
