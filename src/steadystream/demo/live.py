"""The demo's live progress view, read from the registry and the driver's tally as it runs."""

from __future__ import annotations

import time
from typing import Any, TextIO

from .. import conventions as c
from ..spec import Spec
from .report import ClientTally, MetricsView, SLOResult, slo_results

__all__ = ["Progress"]


class Progress:
    """Live progress: a rich table redrawn in place on a TTY, plain periodic lines otherwise.

    The plain lines start after ``plain_every`` seconds (a line at 0 s would only say that
    nothing has finished yet). Once the duration is over, :meth:`finishing` marks the drain,
    so a run that goes on past ``--duration`` says why.

    A scripted run (``duration=None``) sets :attr:`phase` (shown in the title) and
    :attr:`alerts` (pending and firing alerts as ``(state, alertname, failure class,
    runbook)``, one row each), and prints events with :meth:`note`.
    """

    def __init__(
        self,
        spec: Spec,
        registry: Any,
        tally: ClientTally,
        out: TextIO,
        *,
        live: bool,
        duration: float | None,
        plain_every: float = 5.0,
    ) -> None:
        self.spec = spec
        self.registry = registry
        self.tally = tally
        self.out = out
        self.duration = duration
        self.plain_every = plain_every
        self.started = time.monotonic()
        self.drain_end: float | None = None
        self.phase = ""
        self.alerts: list[tuple[str, str, str, str]] = []
        self._live: Any = None
        self._last_plain = self.started
        if live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(
                self._table(),
                console=Console(file=out),
                refresh_per_second=4,
                transient=False,
            )

    def __enter__(self) -> Progress:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(None, None, None)

    def finishing(self, drain: float) -> None:
        """The duration is over: no new streams; running ones get up to ``drain`` seconds."""
        self.drain_end = time.monotonic() + drain

    def _measure(self) -> tuple[float, tuple[SLOResult, ...], MetricsView]:
        view = MetricsView(self.registry, self.spec.service)
        return time.monotonic() - self.started, slo_results(self.spec, view), view

    def note(self, text: str) -> None:
        """Print one event line (an alert's transition, a phase change) above the live
        table, or as a plain line."""
        if self._live is not None:
            from rich.markup import escape

            self._live.console.print(escape(text), soft_wrap=True)
        else:
            print(text, file=self.out, flush=True)

    def _phase(self) -> str:
        if self.drain_end is None:
            return self.phase
        return f"finishing, at most {max(self.drain_end - time.monotonic(), 0):.0f}s more"

    def _clock(self, elapsed: float) -> str:
        if self.duration is None:
            return f"{elapsed:.0f}s"
        return f"{min(elapsed, self.duration):.0f}s / {self.duration:.0f}s"

    def _table(self) -> Any:
        from rich import box
        from rich.table import Table

        elapsed, slos, view = self._measure()
        t = self.tally
        phase = self._phase()
        table = Table(
            title=f"steadystream demo: {self.spec.service} "
            f"({self._clock(elapsed)}" + (f", {phase}" if phase else "") + ")",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        # Sized to fit an 80-column terminal: names never truncated, details wrap.
        table.add_column("measure", no_wrap=True)
        table.add_column("now", justify="right", no_wrap=True)
        table.add_column("target", justify="right", no_wrap=True)
        table.add_column("", overflow="fold")
        table.add_row("streams done", str(t.finished), "", f"{t.failed} failed")
        table.add_row("in flight", str(t.in_flight), "", "")
        for s in slos:
            style = {"PASS": "green", "FAIL": "red"}.get(s.verdict, "yellow")
            detail = f"[{style}]{s.verdict}[/]" + (
                f" ({s.quantile_text})" if s.quantile_text else ""
            )
            table.add_row(s.name, s.share_text, s.target_share_text, detail)
        retries = view.by_label(c.RETRY_TOTAL, c.LABEL_REASON)
        table.add_row(
            "retries",
            str(int(sum(retries.values()))),
            "",
            " ".join(f"{k}={int(v)}" for k, v in retries.items()),
        )
        table.add_row(
            "resumes",
            str(int(view.total(c.RESUME_SUCCESS_TOTAL))),
            "",
            f"{int(view.total(c.RESUME_FAILURE_TOTAL))} failed",
        )
        for state, name, failure_class, runbook in self.alerts:
            style = "red" if state == "firing" else "yellow"
            table.add_row(f"[{style}]alert {state}[/]", name, failure_class, runbook)
        return table

    def line(self) -> str:
        """One plain progress line (what a CI log shows every few seconds): the streams, each
        SLO measured against its target with the verdict so far, retries and resumes."""
        elapsed, slos, view = self._measure()
        t = self.tally
        phase = self._phase()
        parts = [
            f"[{elapsed:5.1f}s] {t.finished} streams done ({t.failed} failed), "
            f"{t.in_flight} in flight" + (f", {phase}" if phase else ""),
            *(f"{s.name} {s.measured_text} vs target {s.target_text}: {s.verdict}" for s in slos),
            f"retries {int(view.total(c.RETRY_TOTAL))}, "
            f"resumes {int(view.total(c.RESUME_SUCCESS_TOTAL))}",
        ]
        if self.alerts:
            parts.append(
                "alerts "
                + ", ".join(
                    f"{name} {state} ({runbook})" for state, name, _, runbook in self.alerts
                )
            )
        return " | ".join(parts)

    def tick(self, *, force: bool = False) -> None:
        """Redraw the table, or print a plain line when ``plain_every`` has passed (or now,
        with ``force``: the end of the load phase always gets a line, however short the run)."""
        if self._live is not None:
            self._live.update(self._table())
            return
        now = time.monotonic()
        if force or now - self._last_plain >= self.plain_every:
            self._last_plain = now
            print(self.line(), file=self.out, flush=True)
