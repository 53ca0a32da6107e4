"""Bounds on what the spec loader reads (see docs/limits.md).

A spec is a few kilobytes of hand-written YAML (the commented example is under 7 KiB, 400
nodes, 6 levels deep). These bounds are far above any real spec and far below what hurts:
past them the loader stops with one located error instead of spending memory or time.
"""

from __future__ import annotations

#: Largest spec file read, in bytes (checked before parsing).
MAX_SPEC_BYTES = 1024 * 1024
#: Deepest nesting of mappings and sequences (the document itself is level 1).
MAX_DEPTH = 64
#: Most alias nodes (``*name``) in one spec.
MAX_ALIASES = 256
#: Most nodes once every alias is expanded (what validation and the position index visit).
MAX_NODES = 50_000
#: Longest field path or message printed in an error line, in characters.
MAX_PROBLEM_TEXT = 200
#: Most problems printed by one error (all of them stay in ``SpecError.problems``).
MAX_PRINTED_PROBLEMS = 100
