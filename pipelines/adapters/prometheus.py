"""Prometheus' HTTP API (``/api/v1/query`` and ``/api/v1/query_range``), read-only, with
timeouts. Every failure to get an answer, whether the server is unreachable, answers with an
HTTP error or with ``"status": "error"``, is an InfraError (exit 3) that says what to check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import requests

from pipelines.errors import InfraError

# (connect, read) seconds: a report's queries are over one window of one namespace's series.
TIMEOUT = (5.0, 60.0)

Labels = dict[str, str]


@dataclass(frozen=True)
class Sample:
    """One series of an instant query's answer."""

    labels: Labels
    value: float


@dataclass(frozen=True)
class Series:
    """One series of a range query's answer: (unix time, value) points."""

    labels: Labels
    points: list[tuple[float, float]]


class Prometheus:
    """A client for one Prometheus server; ``url`` is validated by the caller
    (core.monitor.prometheus_url)."""

    def __init__(self, url: str, timeout: tuple[float, float] = TIMEOUT) -> None:
        """Keep one HTTP session for the report's many queries."""
        self.url = url
        self.timeout = timeout
        self.session = requests.Session()

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()

    def _get(self, path: str, params: dict[str, str]) -> Any:
        hint = (
            f"check that Prometheus answers at {self.url} (--prometheus or "
            "MLOPS_PROMETHEUS_URL) and that this machine may reach it"
        )
        try:
            # POST would also do; GET keeps the request cacheable and the query in its logs.
            r = self.session.get(f"{self.url}{path}", params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise InfraError(
                f"Prometheus at {self.url} is unreachable ({type(exc).__name__})", hint=hint
            ) from exc
        try:
            body = r.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") != "success":
            detail = (
                f"{body.get('errorType')}: {body.get('error')}"
                if isinstance(body, dict)
                else r.text[:200]
            )
            raise InfraError(
                f"Prometheus at {self.url} answered {path} with HTTP {r.status_code}: {detail}",
                hint=hint,
            )
        return body["data"]

    def query(self, expr: str, at: float) -> list[Sample]:
        """An instant query at ``at`` (unix seconds); NaN values are kept as NaN."""
        data = self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})
        if data.get("resultType") != "vector":
            raise InfraError(f"Prometheus answered a {data.get('resultType')}, not a vector")
        return [Sample(dict(r["metric"]), _float(r["value"][1])) for r in data["result"]]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """A range query from ``start`` to ``end`` every ``step`` seconds."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        data = self._get("/api/v1/query_range", params)
        if data.get("resultType") != "matrix":
            raise InfraError(f"Prometheus answered a {data.get('resultType')}, not a matrix")
        return [
            Series(dict(r["metric"]), [(float(t), _float(v)) for t, v in r["values"]])
            for r in data["result"]
        ]


def _float(text: str) -> float:
    """Prometheus writes values as strings, NaN and ±Inf included."""
    try:
        return float(text)
    except ValueError:
        return math.nan
