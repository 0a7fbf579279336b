"""guard: receive Alertmanager webhooks and roll back what the environment's policy allows.

``mlops guard serve`` runs a small Starlette app (the serving extra's starlette and uvicorn;
no TensorFlow, no GX):

- ``POST /alerts``: Alertmanager's webhook, payload version 4. The bearer token
  (MLOPS_GUARD_TOKEN, from a Secret) is compared in constant time; anything else gets 401 and
  nothing is read further. A body over ``MAX_BODY_BYTES`` gets 413, one that is not a version 4
  payload 400. Each alert is decided by core/guard.py against the GitOps branch's tip, then
  rolled back (adapters/rollbacks.py) as a commit or a pull request that quarantines the
  release. Answers 200 with one outcome per alert; 503 when git could not be reached or
  pushed, so Alertmanager retries (and nothing was half-written: a push lands whole or not).
- ``GET /healthz`` for the probes, ``GET /metrics`` for Prometheus (the guard's own registry).

One webhook is handled at a time per process (a lock): two alerts for one environment must
not both read "still serving" before either commits. Across replicas, git's atomic push and
the compare-and-swap re-checked on every re-apply keep the same guarantee; the fingerprint and
rate-limit history is read from git, so it survives restarts and is shared by replicas.

Logs are JSON lines on stderr; the token is never logged.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from pipelines.adapters import gitops
from pipelines.adapters.rollbacks import Automatic, guard_history, roll_back
from pipelines.config import (
    DNS_LABEL,
    environment_names,
    load_gitops,
    load_model,
    model_names,
    reveal,
)
from pipelines.core import guard as rules
from pipelines.errors import CheckFailed, ConfigError, MlopsError

MAX_BODY_BYTES = 1_048_576
MAX_ALERTS = 1000
log = logging.getLogger("mlops.guard")


# --- The payload (Alertmanager's webhook_config, version 4) ------------------------------------


class _Payload(BaseModel):
    # Unknown fields are ignored: Alertmanager may add fields within version 4.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class WebhookAlert(_Payload):
    """One alert of Alertmanager's webhook payload (version 4)."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str  # Alertmanager's field names, as sent
    endsAt: str = ""
    generatorURL: str = ""
    fingerprint: str = Field("", max_length=64)


class Webhook(_Payload):
    """Alertmanager's webhook payload, version 4."""

    version: Literal["4"]
    groupKey: str
    truncatedAlerts: int = 0
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[WebhookAlert] = Field(max_length=MAX_ALERTS)


def to_alert(a: WebhookAlert) -> rules.Alert:
    """The payload's alert as the guard's decisions take it."""
    return rules.Alert(
        a.status, dict(a.labels), dict(a.annotations), a.startsAt, a.generatorURL, a.fingerprint
    )


# --- Deciding and acting -----------------------------------------------------------------------

Outcome = Literal["rolled_back", "proposed", "dry_run", "ignored", "refused", "failed"]


@dataclass(frozen=True)
class Result:
    """What the guard did with one alert, and why."""

    outcome: Outcome
    detail: str
    fingerprint: str = ""


@dataclass(frozen=True)
class GuardConfig:
    """What the running guard needs: the checkout, its token, its limits."""

    root: Path  # the mlops checkout: models, templates and gitops.yaml
    token: SecretStr
    limit: rules.RateLimit
    dry_run: bool = False


def _log(event: str, **fields: Any) -> None:
    log.info(json.dumps({"event": event, **fields}, sort_keys=True))


def _known(cfg: GuardConfig, alert: rules.Alert) -> str | None:
    """Why the alert's environment or model is not one of ours (None: both are). The labels
    become paths and branch names, so they are matched exactly against the allow-lists."""
    env, model = alert.environment, alert.model
    if not re.fullmatch(DNS_LABEL, env) or env not in environment_names(cfg.root / "manifests"):
        return f"unknown environment {env!r}"
    if not re.fullmatch(DNS_LABEL, model) or model not in model_names(cfg.root):
        return f"unknown model {model!r}"
    return None


def decide(cfg: GuardConfig, alert: rules.Alert) -> rules.Decision:
    """The decision on the GitOps branch's tip as it is now."""
    gcfg = load_gitops(cfg.root)
    with gitops.checkout(gcfg, cfg.root) as repo:
        state = repo.read_state(alert.environment)
        history = guard_history(repo, alert.environment)
    return rules.decide(alert, state, history, dt.datetime.now(dt.UTC), cfg.limit)


def act(cfg: GuardConfig, alert: rules.Alert) -> Result:
    """Decide on one alert and, when allowed, roll its release back."""
    why = rules.relevant(alert) or _known(cfg, alert)
    if why is not None:
        return Result("ignored", why, alert.fingerprint)
    decision = decide(cfg, alert)
    if not decision.act or decision.mode is None:
        return Result("ignored", decision.reason, alert.fingerprint)
    if cfg.dry_run:
        return Result("dry_run", f"would {decision.reason} ({decision.mode})", alert.fingerprint)
    ws = load_model(cfg.root, alert.model)
    auto = Automatic(decision.mode, alert.release, rules.alert_trailers(alert))
    r = roll_back(ws, alert.environment, lambda line: _log("progress", line=line), auto=auto)
    if not r.commit:
        return Result("ignored", r.detail, alert.fingerprint)
    return Result("proposed" if r.url else "rolled_back", r.detail, alert.fingerprint)


def handle(cfg: GuardConfig, hook: Webhook) -> tuple[int, list[Result]]:
    """Every alert of one webhook, in order: (HTTP status, outcomes). An infrastructure error
    (git unreachable, a refused push) makes it 503, so Alertmanager sends it again."""
    status, results = 200, []
    for a in hook.alerts:
        alert = to_alert(a)
        try:
            result = act(cfg, alert)
        except CheckFailed as exc:
            result = Result("refused", exc.message, alert.fingerprint)
        except ConfigError as exc:  # an environment or model the GitOps repository lacks
            result = Result("ignored", exc.message, alert.fingerprint)
        except MlopsError as exc:  # InfraError: git unreachable, the push refused
            status, result = 503, Result("failed", exc.message, alert.fingerprint)
        _log(
            "alert",
            outcome=result.outcome,
            detail=result.detail,
            alertname=alert.name,
            environment=alert.environment,
            model=alert.model,
            release=alert.release,
            fingerprint=alert.fingerprint,
            dry_run=cfg.dry_run,
        )
        results.append(result)
    return status, results


def authorized(header: str | None, token: SecretStr) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    scheme, _, given = (header or "").partition(" ")
    expected = reveal(token).encode()
    return (
        scheme.lower() == "bearer"
        and bool(expected)
        and hmac.compare_digest(given.strip().encode(), expected)
    )


# --- HTTP ---------------------------------------------------------------------------------------


def app(cfg: GuardConfig) -> Any:
    """The Starlette app (imported here: `mlops --help` must not load it)."""
    from prometheus_client import CollectorRegistry, Counter, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    registry = CollectorRegistry()
    webhooks = Counter(
        "mlops_guard_webhooks", "Webhooks received, by answer", ["code"], registry=registry
    )
    alerts = Counter(
        "mlops_guard_alerts", "Alerts handled, by outcome", ["outcome"], registry=registry
    )
    lock = threading.Lock()

    def answer(code: int, body: dict[str, Any]) -> Response:
        webhooks.labels(code=str(code)).inc()
        return JSONResponse(body, status_code=code)

    def locked(hook: Webhook) -> tuple[int, list[Result]]:
        with lock:
            return handle(cfg, hook)

    async def receive(request: Request) -> Response:
        if not authorized(request.headers.get("authorization"), cfg.token):
            _log("unauthorized", client=request.client.host if request.client else "")
            return answer(401, {"error": "unauthorized"})
        body = await _read(request)
        if body is None:
            return answer(413, {"error": f"body over {MAX_BODY_BYTES} bytes"})
        try:
            hook = Webhook.model_validate_json(body)
        except ValidationError as exc:
            _log("bad_request", errors=exc.error_count())
            return answer(400, {"error": "not an Alertmanager version 4 webhook payload"})
        code, results = await run_in_threadpool(locked, hook)
        for r in results:
            alerts.labels(outcome=r.outcome).inc()
        return answer(code, {"results": [r.__dict__ for r in results]})

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/alerts", receive, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/metrics", metrics),
        ]
    )


async def _read(request: Any) -> bytes | None:
    """The body, or None once it passes MAX_BODY_BYTES (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def configure(
    root: Path, token: SecretStr | None, limit: rules.RateLimit, dry_run: bool
) -> GuardConfig:
    """The guard's configuration; refuses to start without a webhook token."""
    if token is None or not reveal(token):
        raise ConfigError(
            "the guard has no webhook token",
            hint="set MLOPS_GUARD_TOKEN (from a Secret); Alertmanager sends it as "
            "http_config.authorization.credentials",
        )
    return GuardConfig(root, token, limit, dry_run)


def run(cfg: GuardConfig, host: str, port: int) -> None:
    """Serve until stopped (SIGTERM ends uvicorn gracefully)."""
    import uvicorn

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    _log("start", host=host, port=port, dry_run=cfg.dry_run)
    uvicorn.run(app(cfg), host=host, port=port, log_level="warning", access_log=False)
