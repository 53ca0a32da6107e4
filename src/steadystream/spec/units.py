"""Parsing and formatting of the spec's scalar units: durations, sizes, percentages, rates."""

from __future__ import annotations

import math
import re

_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_SIZE_UNITS = {
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|KB|MB|GB)\s*$")
_PERCENT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h)\s*$")

DURATION_PATTERN = r"^\d+(\.\d+)?(ms|s|m|h|d|w)$"
SIZE_PATTERN = r"^\d+(\.\d+)?(B|KiB|MiB|GiB|KB|MB|GB)$"
PERCENT_PATTERN = r"^\d+(\.\d+)?%$"
RATE_PATTERN = r"^\d+(\.\d+)?/(s|m|h)$"


def parse_duration(value: object) -> float:
    """``"300ms"`` -> 0.3, ``"2.5s"`` -> 2.5, ``"28d"`` -> 2419200.0 (seconds).

    A bare number is ambiguous (seconds? milliseconds?) and is rejected.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '300ms', '2.5s' or '28d', got {value!r}")
    if isinstance(value, int | float):
        raise ValueError(
            f"a bare number ({value!r}) is ambiguous as a duration; "
            f"write it with a unit, e.g. '{value}s' or '{value}ms'"
        )
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as '300ms', '2.5s' or '28d', got {value!r}")
    match = _DURATION_RE.match(value)
    if not match:
        raise ValueError(
            f"invalid duration {value!r}: use a number and one of ms, s, m, h, d, w "
            "(e.g. '300ms', '2.5s', '28d')"
        )
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"duration {value!r} must be greater than zero")
    return seconds


def parse_size(value: object) -> int:
    """``"512KiB"`` -> 524288 (bytes). A bare integer is taken as bytes."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as '512KiB', got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"size {value!r} must be greater than zero")
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a size such as '512KiB' or '1MiB', got {value!r}")
    match = _SIZE_RE.match(value)
    if not match:
        raise ValueError(
            f"invalid size {value!r}: use a number and one of B, KiB, MiB, GiB, KB, MB, GB "
            "(e.g. '512KiB')"
        )
    size = float(match.group(1)) * _SIZE_UNITS[match.group(2)]
    if size <= 0 or size != int(size):
        raise ValueError(f"size {value!r} must be a whole, positive number of bytes")
    return int(size)


def parse_percent(value: object) -> float:
    """``"95%"`` or ``0.95`` -> 0.95. A bare ``95`` is ambiguous and rejected with a hint."""
    if isinstance(value, bool):
        raise ValueError(f"expected a percentage such as '95%' or 0.95, got {value!r}")
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            raise ValueError("percentage must be a number, got NaN")
        if 0 <= value <= 1:
            return float(value)
        raise ValueError(
            f"{value!r} is ambiguous as a percentage; write '{value}%' or "
            f"{value / 100:g} (a fraction between 0 and 1)"
        )
    if not isinstance(value, str):
        raise ValueError(f"expected a percentage such as '95%' or 0.95, got {value!r}")
    match = _PERCENT_RE.match(value)
    if not match:
        raise ValueError(f"invalid percentage {value!r}: write e.g. '95%', '99.9%' or 0.95")
    pct = float(match.group(1))
    if pct > 100:
        raise ValueError(f"percentage {value!r} is above 100%")
    return pct / 100.0


def parse_rate(value: object) -> float:
    """``"50/s"`` -> 50.0, ``"600/m"`` -> 10.0 (events per second)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a rate such as '50/s', got {value!r}")
    if isinstance(value, int | float):
        raise ValueError(f"a bare number ({value!r}) is ambiguous as a rate; write '{value}/s'")
    match = _RATE_RE.match(value)
    if not match:
        raise ValueError(f"invalid rate {value!r}: write e.g. '50/s', '600/m' or '10000/h'")
    per = {"s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2)]
    rate = float(match.group(1)) / per
    if rate <= 0:
        raise ValueError(f"rate {value!r} must be greater than zero")
    return rate


def format_duration(seconds: float) -> str:
    """Seconds -> the shortest Prometheus duration that is exact: 2419200 -> ``"28d"``.

    Prometheus accepts only integer amounts per unit, so 2.5 s becomes ``"2500ms"``.
    """
    ms = round(seconds * 1000)
    if ms <= 0:
        raise ValueError(f"duration {seconds!r}s is not positive")
    for unit, factor in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if ms % factor == 0:
            if unit == "w":
                # Weeks read worse than days in an SLO period ("4w" vs "28d"); keep days.
                return f"{ms // 86_400_000}d"
            return f"{ms // factor}{unit}"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


def format_percent(fraction: float) -> str:
    """0.95 -> ``"95%"``, 0.999 -> ``"99.9%"``."""
    return f"{round(fraction * 100, 6):g}%"


def format_size(size: int) -> str:
    """524288 -> ``"512KiB"``."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"
