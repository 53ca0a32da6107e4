"""The neutral stream core: what every stream goes through, whatever its wire format.

* :mod:`.machine` — :class:`~.machine.StreamCore`, the sans-IO state machine (timeouts, phases,
  checkpoints, outcome) fed with readings and timestamps; no I/O, no clock.
* :mod:`.shell` — the thin sync and async shells ``monitor.wrap`` returns, and
  :class:`~.shell.ByteReader` for byte bodies.
* :mod:`.watchdog` — how the shells bound a blocked read (a thread for sync, a loop timer for
  async).
* :mod:`.checkpoint` — :class:`~.checkpoint.Checkpoint` and the incremental content hash.
* :mod:`.reassembly` — UTF-8, SSE, code-fence and JSON reassembly.

The core never names a wire event type: items are read by :mod:`..providers`.
"""
