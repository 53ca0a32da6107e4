"""How a Prometheus scrapes the demo: the job and labels the generated rules select."""

from __future__ import annotations

import json

from ..spec import Spec

__all__ = ["scrape_config", "scrape_job"]


def scrape_config(address: str, spec: Spec, *, scrape_interval: str = "5s") -> str:
    """A ready-to-paste ``prometheus.yml`` fragment that scrapes the demo at ``address``."""
    job, labels = scrape_job(spec)
    # Values are quoted as JSON strings, which YAML reads as the same strings whatever they
    # hold (a colon in a job name, quotes or backslashes in a selector value).
    text = (
        "scrape_configs:\n"
        f"  - job_name: {json.dumps(job)}\n"
        f"    scrape_interval: {scrape_interval}\n"
        "    static_configs:\n"
        f"      - targets: [{json.dumps(address)}]\n"
    )
    if labels:
        text += "        labels:\n" + "".join(
            f"          {k}: {json.dumps(v)}\n" for k, v in labels.items()
        )
    return text


def scrape_job(spec: Spec) -> tuple[str, dict[str, str]]:
    """The scrape job name and static labels under which the generated rules find the demo.

    The generated queries select ``spec.selector`` (``{job: chat-gateway}`` in the example), so
    the printed scrape config names the job after the selector's ``job`` (else the service) and
    adds the selector's other labels as static target labels.
    """
    job = spec.selector.get("job", spec.service)
    labels = {k: v for k, v in spec.selector.items() if k != "job"}
    return job, labels
