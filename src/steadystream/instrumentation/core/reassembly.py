"""Reassembly of a byte stream into text, SSE events and checked content (all sans-IO).

* :class:`Utf8Decoder`: a strict incremental UTF-8 decoder. A character split across chunks is
  held back until it is complete, so text is never emitted with a partial character; invalid
  bytes are reported (once per stream) and then decoded as U+FFFD so nothing after them is lost.
* :class:`SSEParser`: the WHATWG ``text/event-stream`` parser. Lines end only at CR, LF or CRLF
  (a CR at the end of one chunk followed by LF at the start of the next is one line end); never
  at U+2028, U+0085 or the other separators ``str.splitlines`` would use. Linear in its input,
  with lines and events capped in size (``stream.max_event_bytes``).
* :class:`FenceTracker`: counts Markdown code fences as content grows (a fence split across
  deltas is still seen), so an unclosed fence can be reported at the end.
* :func:`json_problem`: whether content the consumer asked for as JSON is complete JSON.
"""

from __future__ import annotations

import codecs
import json
import sys
from dataclasses import dataclass

__all__ = [
    "FenceTracker",
    "SSEParser",
    "ServerSentEvent",
    "Utf8Decoder",
    "json_problem",
    "looks_like_sse",
    "utf8_len",
]


class Utf8Decoder:
    """Strict incremental UTF-8 decoding with error accounting.

    ``errors`` counts problems: invalid sequences, and a sequence cut off at the end of the
    stream (found by :meth:`final`).
    """

    __slots__ = ("_dec", "errors")

    def __init__(self) -> None:
        self._dec = codecs.getincrementaldecoder("utf-8")("strict")
        self.errors = 0

    def decode(self, data: bytes) -> str:
        """Decode ``data``; a trailing partial character is kept for the next call."""
        try:
            return self._dec.decode(data)
        except UnicodeDecodeError:
            # The buffered decoder leaves its state untouched when it raises, so the same input
            # can be decoded again with replacement: the problem is counted, no data is dropped.
            self.errors += 1
            return self._replacing(data, False)

    def final(self) -> str:
        """Flush at end of stream; a cut-off character counts as an error."""
        try:
            return self._dec.decode(b"", True)
        except UnicodeDecodeError:
            self.errors += 1
            return self._replacing(b"", True)

    def _replacing(self, data: bytes, final: bool) -> str:
        # Decode this input with U+FFFD for the bad bytes, then go back to strict so that the
        # next problem is noticed (and counted) too.
        self._dec.errors = "replace"
        try:
            return self._dec.decode(data, final)
        finally:
            self._dec.errors = "strict"


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched SSE event: ``event`` (default ``"message"``), ``data`` (lines joined with
    LF), ``id`` (the last event id, or ``None``) and ``retry`` (milliseconds, or ``None``)."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None

    def json(self) -> object:
        """``data`` parsed as JSON."""
        return json.loads(self.data)


class SSEParser:
    """Incremental ``text/event-stream`` parser over already-decoded text.

    :meth:`feed` returns the events completed by the text; comment lines (keep-alives such as
    ``: ping``) are counted in ``comments`` and ``last_comments`` rather than dispatched.

    Linear in its input: each piece of text is scanned once for line ends, and the pieces of a
    line split across calls are kept in a list and joined once, when the line ends (never
    re-joined or re-scanned per call). ``max_event_bytes`` bounds what it holds: a line, or an
    event's data lines together, longer than that many UTF-8 bytes sets :attr:`too_large` (a
    message), drops what was held, and the parser ignores its input from then on.
    """

    __slots__ = (
        "_data",
        "_event",
        "_event_size",
        "_has_data",
        "_last_id",
        "_max",
        "_parts",
        "_pending",
        "_quick",
        "_retry",
        "_skip_lf",
        "_started",
        "comments",
        "too_large",
    )

    def __init__(self, max_event_bytes: int | None = None) -> None:
        # The pieces of the current, unfinished line, and their size in UTF-8 bytes.
        self._parts: list[str] = []
        self._pending = 0
        self._skip_lf = False
        self._started = False
        self._data: list[str] = []
        self._has_data = False
        # UTF-8 bytes of the current event's data lines (with their joining line feeds).
        self._event_size = 0
        self._event = ""
        self._last_id: str | None = None
        self._retry: int | None = None
        self._max = max_event_bytes if max_event_bytes is not None else sys.maxsize
        # A line of at most this many characters cannot pass the cap on its own (a character is
        # at most 4 UTF-8 bytes): only longer lines are measured in bytes.
        self._quick = self._max // 4
        #: Comment lines seen so far (keep-alives).
        self.comments = 0
        #: Set when a line or an event passed ``max_event_bytes``: what passed it.
        self.too_large: str | None = None

    def feed(self, text: str) -> list[ServerSentEvent]:
        """Consume ``text``; return the events it completes, in order."""
        if not text or self.too_large is not None:
            return []
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
        out: list[ServerSentEvent] = []
        start = 0
        n = len(text)
        find = text.find
        # The next LF and CR at or after ``start`` (-1: none left); each is searched for again
        # only once passed, so every character is scanned at most once for each.
        lf = find("\n")
        cr = find("\r")
        while start < n:
            if 0 <= lf < start:
                lf = find("\n", start)
            if 0 <= cr < start:
                cr = find("\r", start)
            # Lines end at CR, LF or CRLF only; take the earlier.
            if cr >= 0 and (lf < 0 or cr < lf):
                end = cr
                if cr + 1 < n:
                    nxt = cr + 2 if lf == cr + 1 else cr + 1
                else:
                    # CR at the very end: an LF may start the next chunk and belongs to it.
                    nxt = n
                    self._skip_lf = True
            elif lf >= 0:
                end = lf
                nxt = lf + 1
            else:
                break
            if self._parts:
                self._parts.append(text[start:end])
                line = "".join(self._parts)
                self._parts = []
                self._pending = 0
            else:
                line = text[start:end]
            if not self._line(line, out):
                return out
            start = nxt
        if start < n:
            rest = text[start:] if start else text
            self._parts.append(rest)
            self._pending += utf8_len(rest)
            if self._pending + self._event_size > self._max:
                self._overflow("line")
        return out

    def final(self) -> bool:
        """End of stream. Returns ``True`` when an unterminated event or line was discarded
        (the stream was cut inside an event: the spec says to drop it, we report it)."""
        return bool(self._parts) or self._has_data

    def _overflow(self, what: str) -> None:
        self.too_large = (
            f"an SSE {what} passed stream.max_event_bytes ({self._max} bytes); "
            "the events before it were delivered"
        )
        self._parts = []
        self._pending = 0
        self._data = []
        self._has_data = False
        self._event_size = 0

    def _line(self, line: str, out: list[ServerSentEvent]) -> bool:
        """Handle one complete line; False when it passed the cap (the parser stops)."""
        if not line:
            if self._has_data:
                data = "\n".join(self._data)
                out.append(
                    ServerSentEvent(self._event or "message", data, self._last_id, self._retry)
                )
            self._data = []
            self._has_data = False
            self._event_size = 0
            self._event = ""
            return True
        if len(line) > self._quick and utf8_len(line) + self._event_size > self._max:
            self._overflow("line")
            return False
        if line[0] == ":":
            self.comments += 1
            return True
        colon = line.find(":")
        if colon < 0:
            field, value = line, ""
        else:
            field = line[:colon]
            value = line[colon + 1 :]
            if value.startswith(" "):
                value = value[1:]
        if field == "data":
            self._event_size += utf8_len(value) + 1
            if self._event_size > self._max:
                self._overflow("event")
                return False
            self._data.append(value)
            self._has_data = True
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._last_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        # Other field names are ignored, as the spec requires.
        return True


def utf8_len(text: str) -> int:
    """Length of ``text`` in UTF-8 bytes (``len`` for ASCII text, which is checked in O(1))."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


_SSE_FIELDS = (b"data:", b"event:", b"id:", b"retry:", b":", b"data\n", b"data\r")


def looks_like_sse(head: bytes) -> bool:
    """Sniff the first bytes of a body: does it start like ``text/event-stream``?"""
    head = head.lstrip(b"\xef\xbb\xbf").lstrip(b"\r\n")
    return head.startswith(_SSE_FIELDS)


class FenceTracker:
    """Tracks Markdown code fences (lines starting with ```` ``` ```` or ``~~~``) in growing text.

    Only line starts matter, so the tracker keeps the start of the current line until it can
    tell whether it is a fence; text without a backtick or tilde costs a single scan.
    """

    __slots__ = ("at_line_start", "head", "open_fence")

    def __init__(self) -> None:
        # Public for the core's per-chunk path, which inlines the common "mid-line" case.
        #: True when the next text starts a line.
        self.at_line_start = True
        #: The start of the current line, kept while it may still become a fence.
        self.head = ""
        #: The marker of the fence currently open (e.g. ``"```"``), or ``""``.
        self.open_fence = ""

    def feed(self, text: str) -> None:
        """Account for the next piece of content."""
        if "`" not in text and "~" not in text and not self.head:
            # Fast path: no fence here; only the start of the last line can matter later.
            cut = max(text.rfind("\n"), text.rfind("\r"))
            line_start = cut >= 0 or self.at_line_start
            tail = text[cut + 1 :]
            if line_start and len(tail) <= 3 and not tail.strip(" "):
                # Up to three spaces may indent a fence that the next text completes.
                self.head = tail
                self.at_line_start = not tail
            else:
                self.at_line_start = False
            return
        for part in _split_keep(text):
            if self.at_line_start or self.head:
                self.head += part
                self._resolve()
            if part.endswith(("\n", "\r")):
                self.at_line_start = True
                self.head = ""
            else:
                self.at_line_start = False

    def _resolve(self) -> None:
        head = self.head
        stripped = head.lstrip(" ")
        if len(head) - len(stripped) > 3:
            self.head = ""  # indented code, not a fence
            return
        body = stripped.rstrip("\r\n")
        ended = len(body) != len(stripped)
        if not ended and len(body) < 3 and all(ch in "`~" for ch in body):
            return  # could still become a fence: wait for more text
        marker = body[:3]
        if marker == "```" or marker == "~~~":
            # Lenient by design: any fence line of the open fence's kind closes it.
            if not self.open_fence:
                self.open_fence = marker
            elif marker == self.open_fence:
                self.open_fence = ""
        self.head = ""
        self.at_line_start = False

    @property
    def pending(self) -> bool:
        """True while the start of the current line is held back (it may become a fence)."""
        return bool(self.head)

    def mid_line(self) -> None:
        """The caller saw text without fence characters that does not end in a space or a line
        end: the tracker is now in the middle of a line (a fast path for :meth:`feed`)."""
        self.at_line_start = False

    @property
    def unclosed(self) -> bool:
        """True when a fence is open."""
        return bool(self.open_fence)


def _split_keep(text: str) -> list[str]:
    """Split after each CR or LF, keeping the line ends (never on U+2028 and friends)."""
    parts: list[str] = []
    start = 0
    for i, ch in enumerate(text):
        if ch == "\n" or ch == "\r":
            parts.append(text[start : i + 1])
            start = i + 1
    if start < len(text):
        parts.append(text[start:])
    return parts


def json_problem(text: str) -> str | None:
    """``None`` when ``text`` is one complete JSON document, else a short reason."""
    try:
        json.loads(text)
    except ValueError as exc:
        return str(exc)
    except RecursionError:
        # Nested deeper than the parser goes: it cannot be checked, which is reported too (the
        # check runs as the stream ends, and must not stop it from ending).
        return "nested too deep to check"
    return None
