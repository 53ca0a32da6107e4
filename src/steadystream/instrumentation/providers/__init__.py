"""The provider layer: one module per wire format, the only place a wire event type is named.

* :mod:`.base` — :class:`~.base.Reading` (what an item means: content, lifecycle, keep-alive,
  error of a class, end), the :class:`~.base.WireFormat` protocol a format implements, and the
  duck-typed field access formats share.
* :mod:`.openai_responses` — the OpenAI Responses API; :mod:`.openai_chat` — OpenAI Chat
  Completions; :mod:`.anthropic_messages` — Anthropic Messages (and continuation);
  :mod:`.gemini` — Gemini ``GenerateContentResponse`` chunks (google-genai).
* :mod:`.registry` — the registered formats and the reading functions the core, the shells and
  the policies call (:func:`~.registry.read_item`, :func:`~.registry.fast_path`, ...). A new
  format is one module plus :func:`~.registry.register`.
* :mod:`.failures` — the one exception classifier (HTTP status, network, timeouts -> error
  class and retry reason), shared by the passive path and the retry policy.

For the rest of the package (the demo, tests): :func:`content_text` and :func:`is_incomplete`.
"""

from __future__ import annotations

from .registry import content_text, is_incomplete, read_item, register, unregister

__all__ = ["content_text", "is_incomplete", "read_item", "register", "unregister"]
