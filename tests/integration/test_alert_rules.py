"""The rendered alerting rules, run by Prometheus' own promtool: ``check rules`` on every
rendered PrometheusRule, and ``test rules`` on the scenarios of tests/monitoring/scenarios.py,
which make every alert fire on its fault, stay quiet on reference-like traffic and resolve.

promtool comes with Debian's prometheus package (`scripts/infra.sh monitoring`, and `make test`
through `infra.sh up`). Without it these tests skip locally and fail in CI
(MLOPS_REQUIRE_INFRA=1)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pipelines.config import EnvironmentState, NodePool
from pipelines.core import monitoring
from tests.conftest import ROOT, require
from tests.monitoring import scenarios

pytestmark = pytest.mark.infra
GOLDEN = ROOT / "tests" / "golden" / "rendered"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    require(
        "promtool", path is not None, "install Debian's prometheus: scripts/infra.sh monitoring"
    )
    assert path is not None
    return path


def run(promtool: str, *args: str, cwd: Path) -> str:
    done = subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def rule_file(spec: dict[str, object], path: Path) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.mark.parametrize("env", ["staging", "production"])
def test_rendered_rules_pass_promtool_check(promtool: str, env: str, tmp_path: Path) -> None:
    obj = yaml.safe_load((GOLDEN / env / "prometheusrule-digits.yaml").read_text())
    path = rule_file(obj["spec"], tmp_path / "rules.yaml")
    out = run(promtool, "check", "rules", str(path), cwd=tmp_path)
    assert "SUCCESS: 19 rules found" in out


# Shorter windows, as a local loop test would render them (RuleSettings is what shrinks them).
SHORT = monitoring.RuleSettings(
    window="5m",
    drift_for="3m",
    drift_keep_firing_for="3m",
    anomaly_for="3m",
    latency_for="3m",
    errors_for="2m",
    down_for="1m",
    keep_firing_for="2m",
)


@pytest.mark.parametrize(
    ("auto_rollback", "settings"),
    [("direct", monitoring.settings_for(50)), ("off", monitoring.settings_for(50)), ("pr", SHORT)],
    ids=["rollback-allowed", "rollback-off", "short-windows"],
)
def test_every_alert_fires_on_its_fault_stays_quiet_and_resolves(
    promtool: str, auto_rollback: str, settings: monitoring.RuleSettings, tmp_path: Path
) -> None:
    """The production windows, as rendered for staging (auto_rollback direct: the drift, error
    and down alerts carry action=rollback) and for an environment that allows none; and the
    windows shrunk, as tests render them."""
    state = EnvironmentState(
        node_pool=NodePool(cpu="4", memory="16Gi", nodes=3),
        environment=scenarios.ENVIRONMENT,
        namespace=scenarios.NAMESPACE,
        auto_rollback=auto_rollback,
    )
    scope = monitoring.Scope(state.environment, state.namespace, "digits", state.auto_rollback)
    rule_file({"groups": monitoring.rule_groups(scope, settings)}, tmp_path / "rules.yaml")
    scenarios.write("rules.yaml", tmp_path / "rules.test.yaml", rollback=auto_rollback != "off")
    out = run(promtool, "test", "rules", "rules.test.yaml", cwd=tmp_path)
    assert "SUCCESS" in out
    # Every alert the rules define has its scenario.
    defined = {a.name for a in monitoring.alerts(scope, settings)}
    assert defined == {c.alert for c in scenarios.cases(rollback=False)}
