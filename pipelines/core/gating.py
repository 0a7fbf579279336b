"""The gate: turns metrics and a paired comparison into a verdict with one reason per rule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pipelines.config.schema import GateConfig
from pipelines.core.comparison import PairedComparison, PairedErrors, SliceResult
from pipelines.core.regression import judge_errors


@dataclass(frozen=True)
class RuleResult:
    """One gate rule's outcome, with the reason a reviewer reads."""

    rule: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class Verdict:
    """Whether a model is blessed, and the rule results that decided it."""

    blessed: bool
    rules: list[RuleResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The verdict as plain JSON-ready data."""
        return {"blessed": self.blessed, "rules": [asdict(r) for r in self.rules]}

    @property
    def failed(self) -> list[RuleResult]:
        """The rules that did not pass."""
        return [r for r in self.rules if not r.passed]


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a TFLite model, as the interpreter reports it."""

    shape: tuple[int, ...]  # without the batch dimension
    dtype: str
    quantized: bool  # integer tensors with a scale: the caller would have to (de)quantise

    def __str__(self) -> str:
        return f"{self.dtype}{list(self.shape)}" + (" (quantised)" if self.quantized else "")


@dataclass(frozen=True)
class ModelIO:
    """A model's input and output tensor specs, as the serving contract checks them."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def incomparable(candidate: ModelIO, baseline: ModelIO, outputs: int) -> list[str]:
    """Why a baseline cannot be scored the way the candidate is (empty: it can be).

    The paired comparison feeds the baseline the candidate's float inputs one example at a time
    and reads ``outputs`` numbers: one probability per class of a classifier, the one value of a
    regressor. Anything else makes the comparison meaningless."""
    problems: list[str] = []
    for kind, cand, base in (
        ("input", candidate.inputs, baseline.inputs),
        ("output", candidate.outputs, baseline.outputs),
    ):
        if len(base) != len(cand):
            problems.append(f"the baseline has {len(base)} {kind}(s), the candidate {len(cand)}")
            continue
        for c, b in zip(cand, base, strict=True):
            if b.quantized or b.dtype in ("int8", "uint8", "int16"):
                problems.append(
                    f"the baseline's {kind} is quantised ({b}); the gate feeds and "
                    f"reads float tensors like the candidate's {c}"
                )
            elif b.dtype != c.dtype:
                problems.append(f"{kind} dtype: baseline {b.dtype}, candidate {c.dtype}")
            if b.shape != c.shape:
                problems.append(
                    f"{kind} shape: baseline {list(b.shape)}, candidate {list(c.shape)}"
                )
    if len(baseline.outputs) == 1:
        out = baseline.outputs[0].shape
        predicted = out[-1] if out else 1
        if len(out) != 1 or predicted != outputs:
            problems.append(
                f"the baseline predicts {predicted} classes (output {list(out)}); this model "
                f"has {outputs}"
                if outputs > 1
                else f"the baseline has {predicted} outputs (output {list(out)}); this "
                "regressor predicts one value"
            )
    return list(dict.fromkeys(problems))


def _pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def _threshold_rule(key: str, limit: float, metrics: dict[str, Any]) -> RuleResult:
    """One absolute limit: a classifier's minimum (a share, shown in percent), a regressor's
    max_rmse / max_mae (in the target's units) or min_r2."""
    if key.startswith("max_"):
        value = float(metrics[key[4:]])
        ok = value <= limit
        return RuleResult(key, ok, f"{key[4:]} {value:.4g} {'<=' if ok else '>'} limit {limit:.4g}")
    if key == "min_r2":
        value = float(metrics["r2"])
        ok = value >= limit
        return RuleResult(key, ok, f"R² {value:.4f} {'>=' if ok else '<'} required {limit:.4f}")
    value = float(metrics[key])
    ok = value >= limit
    return RuleResult(
        f"min_{key}", ok, f"{key} {_pct(value)} {'>=' if ok else '<'} required {_pct(limit)}"
    )


def absolute_rules(cfg: GateConfig, metrics: dict[str, Any]) -> list[RuleResult]:
    """One rule per limit the model's task states (Thresholds.of), plus size and latency."""
    results = [
        _threshold_rule(key, limit, metrics)
        for key, limit in cfg.thresholds.of(metrics["task"]).items()
    ]
    if cfg.max_size_bytes is not None:
        size = int(metrics["size_bytes"])
        ok = size <= cfg.max_size_bytes
        results.append(
            RuleResult(
                "max_size_bytes",
                ok,
                f"artifact size {size} bytes {'<=' if ok else '>'} "
                f"limit {cfg.max_size_bytes} bytes",
            )
        )
    if cfg.max_latency_p99_ms is not None:
        p99 = float(metrics["latency_ms"]["p99"])
        ok = p99 <= cfg.max_latency_p99_ms
        results.append(
            RuleResult(
                "max_latency_p99_ms",
                ok,
                f"p99 latency {p99:.3f} ms {'<=' if ok else '>'} limit {cfg.max_latency_p99_ms} ms",
            )
        )
    return results


def per_class_rules(cfg: GateConfig, per_class_recall: dict[str, float]) -> list[RuleResult]:
    """A single rule that fails if any class's recall is below its minimum."""
    failing: list[str] = []
    for cls, recall in sorted(per_class_recall.items(), key=lambda kv: int(kv[0])):
        minimum = cfg.per_class.overrides.get(int(cls), cfg.per_class.min_recall)
        if recall < minimum:
            failing.append(f"class {cls} recall {_pct(recall)} < {_pct(minimum)}")
    if failing:
        return [RuleResult("per_class_min_recall", False, "; ".join(failing))]
    worst_cls, worst = min(per_class_recall.items(), key=lambda kv: kv[1])
    return [
        RuleResult(
            "per_class_min_recall",
            True,
            f"every class meets its recall minimum (lowest: class {worst_cls} at {_pct(worst)})",
        )
    ]


def change_rule(
    cfg: GateConfig, comparison: PairedComparison | PairedErrors | None, missing: str = ""
) -> RuleResult:
    """The rule comparing candidate with baseline; without a baseline, the config decides.
    ``missing`` says why there is none, when the caller knows (e.g. no bundle downloaded)."""
    rule = cfg.change
    name = f"change_{rule.require}"
    if comparison is None:
        ok = rule.on_missing_baseline == "pass"
        return RuleResult(
            name,
            ok,
            (
                "no baseline model"
                + (f" ({missing})" if missing else "")
                + ": the change rule was not applied "
                + (
                    (
                        "(on_missing_baseline=pass)"
                        if missing
                        else "(first release; on_missing_baseline=pass)"
                    )
                    if ok
                    else "and on_missing_baseline=fail demands one"
                )
            ),
        )
    if isinstance(comparison, PairedErrors):
        change = judge_errors(
            comparison, require=rule.require, max_increase=rule.max_increase, alpha=rule.alpha
        )
        return RuleResult(name, change.passed, f"{change.verdict}: {change.facts}")
    c = comparison
    facts = (
        f"accuracy delta {c.delta * 100:+.2f} pp, 95% CI [{c.ci_low * 100:+.2f}, "
        f"{c.ci_high * 100:+.2f}] pp, McNemar exact p={c.p_value:.4g} (b={c.b}, c={c.c}, n={c.n})"
    )
    significant = c.p_value < rule.alpha
    if rule.require == "better":
        ok = c.delta > 0 and significant and c.ci_low > 0
        verdict = (
            "significantly better than the baseline"
            if ok
            else "not significantly better than the baseline"
        )
    else:
        worse = c.delta < 0 and significant
        beyond_margin = c.ci_low < -rule.max_drop
        ok = not worse and not beyond_margin
        if worse:
            verdict = f"significantly worse than the baseline (p < alpha={rule.alpha})"
        elif beyond_margin:
            verdict = (
                f"cannot rule out a drop larger than the {_pct(rule.max_drop)} margin "
                "(CI lower bound below it)"
            )
        else:
            verdict = "not significantly worse than the baseline"
    return RuleResult(name, ok, f"{verdict}: {facts}")


def slice_rule(results: Sequence[SliceResult]) -> list[RuleResult]:
    """One rule over gate.slices (none when no slice is configured): it fails when a slice
    that could be judged fails; a slice too small to judge is named, never silently passed."""
    if not results:
        return []
    failed = [r.reason for r in results if r.judged and not r.passed]
    small = [r.name for r in results if not r.judged]
    judged = sum(r.judged for r in results)
    note = f"; too small to judge: {', '.join(small)}" if small else ""
    if failed:
        return [RuleResult("slices", False, "; ".join(failed) + note)]
    return [
        RuleResult(
            "slices",
            True,
            f"{judged} of {len(results)} slices judged, each meets its minimum and is not "
            f"worse{note}",
        )
    ]


def decide(
    cfg: GateConfig,
    metrics: dict[str, Any],
    comparison: PairedComparison | PairedErrors | None,
    missing: str = "",
    slices: Sequence[SliceResult] = (),
) -> Verdict:
    """The gate verdict: blessed only if every absolute, per-class (a classifier's), change and
    slice rule passes."""
    per_class = (
        per_class_rules(cfg, {k: v["recall"] for k, v in metrics["per_class"].items()})
        if metrics["task"] == "classification"
        else []
    )
    rules = [
        *absolute_rules(cfg, metrics),
        *per_class,
        change_rule(cfg, comparison, missing),
        *slice_rule(slices),
    ]
    return Verdict(blessed=all(r.passed for r in rules), rules=rules)
