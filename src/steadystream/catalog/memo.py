"""The per-render memo: derived views of the spec computed once per render."""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ..spec import Spec

__all__ = ["per_render", "render_scope"]

# The renderers share derived views of the spec (the dashboards' panel index, the alert
# signals): the rules, the promtool tests and the runbooks each need them, several times.
# Computing them once per render keeps generation linear in the SLOs. The memo lives only
# while a render_scope() is open (no global cache that grows or outlives a spec), and is
# keyed on the spec's identity: the spec model is frozen but holds lists, so it is not
# hashable, and within one render it is one object. Each entry keeps its spec alive, so
# an id is never reused for another spec while the scope is open.
_MEMO: contextvars.ContextVar[dict[tuple[Any, int], tuple[Spec, Any]] | None] = (
    contextvars.ContextVar("steadystream_render_memo", default=None)
)
_T = TypeVar("_T")


@contextlib.contextmanager
def render_scope() -> Iterator[None]:
    """Within this block, functions decorated with :func:`per_render` compute their result
    once per spec object. Nested scopes share the outermost memo."""
    if _MEMO.get() is not None:
        yield
        return
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def per_render(
    copy: Callable[[_T], _T],
) -> Callable[[Callable[[Spec], _T]], Callable[[Spec], _T]]:
    """Memoise a function of the spec alone inside a :func:`render_scope` (outside one it
    runs every time). ``copy`` makes what each caller gets from the stored result (e.g.
    ``dict``), so a caller that changes its result does not change the next caller's."""

    def decorate(fn: Callable[[Spec], _T]) -> Callable[[Spec], _T]:
        @functools.wraps(fn)
        def wrapper(spec: Spec) -> _T:
            memo = _MEMO.get()
            if memo is None:
                return fn(spec)
            key = (wrapper, id(spec))
            hit = memo.get(key)
            if hit is None or hit[0] is not spec:
                hit = memo[key] = (spec, fn(spec))
            return copy(hit[1])

        return wrapper

    return decorate
