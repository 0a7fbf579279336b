from typing import Any

import pytest

from pipelines.config import GateConfig
from pipelines.core.comparison import PairedComparison, PairedErrors, SliceResult
from pipelines.core.gating import ModelIO, TensorSpec, decide, incomparable


def metrics(
    accuracy: float = 0.97,
    f1: float = 0.97,
    recalls: dict[str, float] | None = None,
    size: int = 40_000,
    p99: float = 0.02,
) -> dict[str, Any]:
    recalls = recalls or {str(c): 0.95 for c in range(10)}
    return {
        "task": "classification",
        "accuracy": accuracy,
        "macro_f1": f1,
        "macro_precision": f1,
        "macro_recall": f1,
        "size_bytes": size,
        "latency_ms": {"p99": p99},
        "per_class": {c: {"recall": r} for c, r in recalls.items()},
    }


def comparison(
    delta: float, ci: tuple[float, float], p: float, b: int = 5, c: int = 5
) -> PairedComparison:
    return PairedComparison(
        n=360,
        candidate_accuracy=0.9 + delta,
        baseline_accuracy=0.9,
        delta=delta,
        ci_low=ci[0],
        ci_high=ci[1],
        b=b,
        c=c,
        p_value=p,
    )


def cfg(**change: Any) -> GateConfig:
    return GateConfig.model_validate(
        {
            "thresholds": {"accuracy": 0.9, "macro_f1": 0.9},
            "max_size_bytes": 100_000,
            "max_latency_p99_ms": 1.0,
            "per_class": {"min_recall": 0.8, "overrides": {8: 0.7}},
            "change": change,
        }
    )


def rule(verdict: Any, name: str) -> Any:
    return next(r for r in verdict.rules if r.rule == name)


def test_good_candidate_without_baseline_is_blessed_and_says_so() -> None:
    v = decide(cfg(), metrics(), None)
    assert v.blessed
    assert "no baseline model" in rule(v, "change_not_worse").reason
    assert {r.rule for r in v.rules} == {
        "min_accuracy",
        "min_macro_f1",
        "max_size_bytes",
        "max_latency_p99_ms",
        "per_class_min_recall",
        "change_not_worse",
    }


def test_missing_baseline_can_be_made_to_fail() -> None:
    v = decide(cfg(on_missing_baseline="fail"), metrics(), None)
    assert not v.blessed
    assert "demands one" in rule(v, "change_not_worse").reason


@pytest.mark.parametrize(("policy", "blessed"), [("pass", True), ("fail", False)])
def test_a_missing_baseline_says_why_when_the_caller_knows(policy: str, blessed: bool) -> None:
    why = "no baseline bundle in b: its artifact expired"
    v = decide(cfg(on_missing_baseline=policy), metrics(), None, why)
    assert v.blessed is blessed
    reason = rule(v, "change_not_worse").reason
    assert reason.startswith(f"no baseline model ({why}): the change rule was not applied")
    assert "first release" not in reason  # only a caller that knows nothing assumes that
    assert (
        decide(cfg(), metrics(), None)
        .rules[-1]
        .reason.endswith("(first release; on_missing_baseline=pass)")
    )


def test_absolute_threshold_failure_names_value_and_limit() -> None:
    v = decide(cfg(), metrics(accuracy=0.85), None)
    assert not v.blessed
    assert rule(v, "min_accuracy").reason == "accuracy 85.00% < required 90.00%"
    assert [r.rule for r in v.failed] == ["min_accuracy"]


def test_size_and_latency_limits() -> None:
    v = decide(cfg(), metrics(size=200_000, p99=3.5), None)
    assert {r.rule for r in v.failed} == {"max_size_bytes", "max_latency_p99_ms"}


def test_per_class_override_is_applied() -> None:
    recalls = {str(c): 0.95 for c in range(10)} | {"8": 0.75}
    assert decide(cfg(), metrics(recalls=recalls), None).blessed  # 8's minimum is 0.7
    recalls["3"] = 0.79
    v = decide(cfg(), metrics(recalls=recalls), None)
    assert rule(v, "per_class_min_recall").reason == "class 3 recall 79.00% < 80.00%"


def test_significantly_worse_is_refused() -> None:
    v = decide(cfg(), metrics(), comparison(-0.05, (-0.08, -0.02), 0.001, b=2, c=20))
    assert not v.blessed
    assert rule(v, "change_not_worse").reason.startswith("significantly worse")


def test_drop_beyond_margin_is_refused_even_when_not_significant() -> None:
    v = decide(cfg(max_drop=0.01), metrics(), comparison(-0.005, (-0.03, 0.02), 0.4))
    assert not rule(v, "change_not_worse").passed
    assert "margin" in rule(v, "change_not_worse").reason


def test_equal_model_is_not_worse() -> None:
    v = decide(cfg(), metrics(), comparison(0.0, (0.0, 0.0), 1.0, b=0, c=0))
    assert v.blessed
    assert "p=1" in rule(v, "change_not_worse").reason


@pytest.mark.parametrize(
    ("delta", "ci", "p", "blessed"),
    [
        (0.03, (0.01, 0.05), 0.01, True),
        (0.01, (-0.01, 0.03), 0.3, False),  # better, but not significantly
        (-0.01, (-0.03, 0.01), 0.3, False),
    ],
)
def test_better_requires_significance(
    delta: float, ci: tuple[float, float], p: float, blessed: bool
) -> None:
    v = decide(cfg(require="better"), metrics(), comparison(delta, ci, p))
    assert rule(v, "change_better").passed is blessed


def _io(
    inputs: list[tuple[tuple[int, ...], str, bool]],
    outputs: list[tuple[tuple[int, ...], str, bool]],
) -> Any:
    from pipelines.core.gating import ModelIO, TensorSpec

    return ModelIO(tuple(TensorSpec(*t) for t in inputs), tuple(TensorSpec(*t) for t in outputs))


def test_comparable_baseline_has_no_problems() -> None:
    from pipelines.core.gating import incomparable

    model = _io([((8, 8, 1), "float32", False)], [((10,), "float32", False)])
    assert incomparable(model, model, 10) == []


@pytest.mark.parametrize(
    ("inputs", "outputs", "fragment"),
    [
        (
            [((64,), "float32", False)],
            [((10,), "float32", False)],
            "input shape: baseline [64], candidate [8, 8, 1]",
        ),
        (
            [((8, 8, 1), "int8", True)],
            [((10,), "float32", False)],
            "the baseline's input is quantised",
        ),
        (
            [((8, 8, 1), "float32", False)],
            [((10,), "uint8", True)],
            "the baseline's output is quantised",
        ),
        (
            [((8, 8, 1), "float32", False)],
            [((10,), "float16", False)],
            "output dtype: baseline float16, candidate float32",
        ),
        (
            [((8, 8, 1), "float32", False)],
            [((3,), "float32", False)],
            "the baseline predicts 3 classes (output [3]); this model has 10",
        ),
        (
            [((8, 8, 1), "float32", False)],
            [((2, 5), "float32", False)],
            "output shape: baseline [2, 5], candidate [10]",
        ),
        (
            [((8, 8, 1), "float32", False)] * 2,
            [((10,), "float32", False)],
            "the baseline has 2 input(s), the candidate 1",
        ),
    ],
)
def test_incomparable_baselines_name_the_mismatch(inputs: Any, outputs: Any, fragment: str) -> None:
    from pipelines.core.gating import incomparable

    candidate = _io([((8, 8, 1), "float32", False)], [((10,), "float32", False)])
    problems = incomparable(candidate, _io(inputs, outputs), 10)
    assert any(fragment in p for p in problems), problems


def regression_metrics(rmse: float = 50.0, mae: float = 40.0, r2: float = 0.5) -> dict[str, Any]:
    return {
        "task": "regression",
        "rmse": rmse,
        "mae": mae,
        "r2": r2,
        "size_bytes": 6_000,
        "latency_ms": {"p99": 0.05},
        "per_class": {},
    }


def regression_cfg(**change: Any) -> GateConfig:
    return GateConfig.model_validate(
        {"thresholds": {"max_rmse": 60, "max_mae": 45, "min_r2": 0.3}, "change": change}
    )


def errors(delta: float, ci: tuple[float, float], p: float, mae: float = 40.0) -> PairedErrors:
    return PairedErrors(
        n=111,
        candidate_mae=mae + delta,
        baseline_mae=mae,
        delta=delta,
        ci_low=ci[0],
        ci_high=ci[1],
        wilcoxon_statistic=100.0,
        p_value=p,
    )


def test_a_regressor_is_held_to_its_own_limits_in_its_own_units() -> None:
    v = decide(regression_cfg(), regression_metrics(rmse=61.5, mae=44.0, r2=0.29), None)
    assert not v.blessed
    assert [(r.rule, r.passed) for r in v.rules[:3]] == [
        ("max_rmse", False),
        ("max_mae", True),
        ("min_r2", False),
    ]
    assert rule(v, "max_rmse").reason == "rmse 61.5 > limit 60"
    assert rule(v, "min_r2").reason == "R² 0.2900 < required 0.3000"
    # No classification rule applies: neither the 0.9 accuracy default nor per-class recall.
    assert {r.rule for r in v.rules}.isdisjoint({"min_accuracy", "per_class_min_recall"})


def test_the_regression_change_rule_is_relative_to_the_baseline_mae() -> None:
    gate = regression_cfg(max_increase=0.05)  # margin: 0.05 x 40 = 2.0 in the target's units
    within = decide(gate, regression_metrics(), errors(0.5, (-0.8, 1.9), 0.4))
    assert rule(within, "change_not_worse").passed
    beyond = decide(gate, regression_metrics(), errors(0.5, (-0.8, 2.1), 0.4))
    assert not rule(beyond, "change_not_worse").passed
    assert "5.00% margin (2; CI upper bound above it)" in rule(beyond, "change_not_worse").reason
    worse = decide(gate, regression_metrics(), errors(1.0, (0.2, 1.8), 0.01))
    assert "significantly worse" in rule(worse, "change_not_worse").reason
    better = regression_cfg(require="better")
    assert rule(
        decide(better, regression_metrics(), errors(-3, (-5, -1), 0.001)), "change_better"
    ).passed
    assert not rule(
        decide(better, regression_metrics(), errors(-3, (-5, 0.5), 0.03)), "change_better"
    ).passed


def slice_result(name: str, judged: bool = True, passed: bool = True) -> SliceResult:
    reason = f"{name}: " + (
        "too small to judge" if not judged else "ok" if passed else "MAE 70 > 65"
    )
    return SliceResult(name, 40, 41.0, 40.0, judged=judged, passed=passed, reason=reason)


def test_slices_fail_the_gate_and_a_slice_too_small_is_named_never_silently_passed() -> None:
    ok = [slice_result("sex=1"), slice_result("bmi in [30, inf)", judged=False)]
    v = decide(regression_cfg(), regression_metrics(), None, slices=ok)
    assert v.blessed
    assert rule(v, "slices").reason == (
        "1 of 2 slices judged, each meets its minimum and is not worse; too small to judge: "
        "bmi in [30, inf)"
    )
    bad = [*ok, slice_result("sex=2", passed=False)]
    v = decide(regression_cfg(), regression_metrics(), None, slices=bad)
    assert not v.blessed
    assert rule(v, "slices").reason.startswith("sex=2: MAE 70 > 65; too small to judge")
    # No slices configured: no slice rule at all.
    assert all(
        r.rule != "slices" for r in decide(regression_cfg(), regression_metrics(), None).rules
    )


def test_a_regressor_baseline_must_have_one_output() -> None:
    spec = TensorSpec((11,), "float32", quantized=False)
    one, ten = TensorSpec((1,), "float32", False), TensorSpec((10,), "float32", False)
    assert incomparable(ModelIO((spec,), (one,)), ModelIO((spec,), (one,)), 1) == []
    problems = incomparable(ModelIO((spec,), (one,)), ModelIO((spec,), (ten,)), 1)
    assert (
        "the baseline has 10 outputs (output [10]); this regressor predicts one value" in problems
    )
