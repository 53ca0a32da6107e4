"""The runtime policy the spec describes, built on the core.

* :mod:`.timeouts` — the HTTP client's connect / read / write / pool timeouts.
* :mod:`.retry` — which failures to retry, and the backoff before the next attempt.
* :mod:`.budget` — the retry budget shared by a monitor's streams (retry-storm guard).
* :mod:`.ingress` — concurrency cap and rate limit in front of a monitor's streams.
* :mod:`.resume` — exactly-once resume from a checkpoint.
* :mod:`.relay` — flow control: a bounded buffer in front of a slow consumer.
"""
