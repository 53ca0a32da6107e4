"""Deterministic model output: the same (prompt, seed, tokens) always yields the same text.

The text is a sequence of *pieces* (a stand-in for model tokens) drawn from a fixed vocabulary
that deliberately mixes ASCII words with multi-byte UTF-8: CJK, emoji (including ZWJ sequences
and flags), combining marks and right-to-left script. Byte-exact resume and UTF-8 reassembly
are only tested for real when a cut can land inside a 4-byte emoji or between a base letter and
its combining accent.

Pieces are chosen by hashing ``(prompt, seed, index)`` with SHA-256, not with :mod:`random`,
so the text is identical across Python versions and platforms, and piece ``i`` can be computed
without computing the ones before it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Final

DEFAULT_TOKENS: Final = 32
"""Pieces generated when a request names neither ``max_output_tokens`` nor a token header."""

MAX_TOKENS: Final = 200_000
"""Upper bound on pieces per response, so one request cannot exhaust the simulator's memory."""

# Every piece starts with a space except the CJK ones (CJK text has no spaces), so the output
# reads as text. The multi-byte pieces are frequent enough that a 32-piece response almost
# always holds several of them; _FIRST_PIECES guarantees it does.
_VOCAB: Final[tuple[str, ...]] = (
    " stream",
    " token",
    " latency",
    " the",
    " of",
    " and",
    " resume",
    " chunk",
    " model",
    " budget",
    " p95",
    " 42",
    ",",
    ".",
    "\n",
    "流式",  # CJK, 3 bytes per character
    "传输",
    "令牌",
    "の",
    "データ",
    " 🚀",  # 4-byte emoji
    " ✅",
    " 👩\u200d💻",  # ZWJ sequence: woman + ZWJ + laptop
    " 👨\u200d👩\u200d👧\u200d👦",  # ZWJ family, 25 bytes
    " 🏳\ufe0f\u200d🌈",  # flag with variation selector and ZWJ
    " 🇫🇷",  # regional-indicator pair
    " cafe\u0301",  # e + COMBINING ACUTE ACCENT
    " n\u0303o",  # n + COMBINING TILDE
    " Ǻ\u0323",  # precomposed letter plus a combining dot below
    " Привет",  # Cyrillic, 2 bytes per character
    " مرحبا",  # Arabic, right-to-left
    " naïve",
    " 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",  # mathematical fraktur, 4 bytes each
)
# The first pieces of every response cover each UTF-8 width, so even a short response exercises
# multi-byte reassembly: ASCII, 2-byte, 3-byte, 4-byte, ZWJ and a combining mark.
_FIRST_PIECES: Final[tuple[str, ...]] = (
    " Hello",
    " Привет",
    "流式",
    " 🚀",
    " 👩\u200d💻",
    " cafe\u0301",
)


def prompt_key(prompt: object) -> str:
    """The canonical string a prompt (the request's ``input``) is hashed as.

    A string is used as is; anything else (a list of input items) is canonical JSON, so the
    same conversation always gives the same text regardless of key order.
    """
    if isinstance(prompt, str):
        return prompt
    return json.dumps(prompt, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def input_tokens(prompt: object) -> int:
    """The input tokens every simulated API reports for ``prompt``: a quarter of its
    canonical key (:func:`prompt_key`) in UTF-8 bytes, at least 1."""
    return max(1, len(prompt_key(prompt).encode()) // 4)


def _piece(key: bytes, index: int) -> str:
    if index < len(_FIRST_PIECES):
        return _FIRST_PIECES[index]
    digest = hashlib.sha256(key + index.to_bytes(8, "big")).digest()
    return _VOCAB[int.from_bytes(digest[:4], "big") % len(_VOCAB)]


def _key(prompt: object, seed: int) -> bytes:
    return hashlib.sha256(f"{seed}\x00{prompt_key(prompt)}".encode()).digest()


def pieces(prompt: object, seed: int = 0, tokens: int = DEFAULT_TOKENS) -> list[str]:
    """The ``tokens`` pieces of the response to ``prompt`` under ``seed``, in order."""
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0, got {tokens}")
    key = _key(prompt, seed)
    return [_piece(key, i) for i in range(tokens)]


def expected_text(prompt: object, seed: int = 0, tokens: int = DEFAULT_TOKENS) -> str:
    """The full output text the simulator streams for ``prompt`` with ``seed`` and ``tokens``.

    This is the oracle for byte-exact tests: however the stream is cut, split, dropped and
    resumed, the concatenated ``response.output_text.delta`` values must equal this string.
    ``prompt`` is the request's ``input`` (a string or a list of input items); ``tokens`` is the
    request's ``max_output_tokens`` (or :data:`DEFAULT_TOKENS` when it sends none).

    >>> expected_text("hi", seed=0, tokens=3)
    ' Hello Привет流式'
    """
    return "".join(pieces(prompt, seed, tokens))


def deltas(
    prompt: object, seed: int = 0, tokens: int = DEFAULT_TOKENS, delta_size: int = 1
) -> list[str]:
    """The text split into the deltas the stream sends: ``delta_size`` pieces per delta.

    ``"".join(deltas(...)) == expected_text(...)`` for every ``delta_size``.
    """
    if delta_size < 1:
        raise ValueError(f"delta_size must be >= 1, got {delta_size}")
    ps = pieces(prompt, seed, tokens)
    return ["".join(ps[i : i + delta_size]) for i in range(0, len(ps), delta_size)]
