from pipelines.core.report import table


def test_table_pads_columns() -> None:
    assert table(["a", "bb"], [["xxx", "y"]]).splitlines() == [
        "| a   | bb |",
        "|-----|----|",
        "| xxx | y  |",
    ]


def test_ci_report_headlines_and_tables() -> None:
    from pipelines.core.report import ci_report, gitlab_metrics

    rules = [{"rule": "min_accuracy", "passed": False, "reason": "accuracy 80% < 90%|x"}]
    blessing = {
        "blessed": False,
        "rules": rules,
        "baseline": {"metrics": {"accuracy": 0.95, "per_class_recall": {"0": 0.9}}},
        "comparison": {
            "delta": -0.15,
            "ci_low": -0.2,
            "ci_high": -0.1,
            "p_value": 1e-6,
            "b": 1,
            "c": 50,
        },
        "candidate": {"accuracy": 0.8, "macro_f1": 0.79, "per_class_recall": {"0": 0.7}},
    }
    summary = {
        "success": True,
        "evaluated_expectations": 10,
        "failed_expectations": 0,
        "rows": {"test": 3},
        "provenance": {"data_md5": "m"},
    }
    text = ci_report(
        model="digits",
        summary=summary,
        blessing=blessing,
        links=[("Data Docs", "https://ci/x/index.html")],
        context="commit abc",
    )
    assert "❌ refused by the gate" in text
    assert "| accuracy | 80.00%    | 95.00%     | -15.00 pp | [-20.00 pp, -10.00 pp]" in text
    assert "McNemar p=1e-06 (b=1, c=50)" in text
    assert "accuracy 80% < 90%\\|x" in text  # a pipe in a reason cannot break the table
    assert "[Data Docs](https://ci/x/index.html)" in text
    assert gitlab_metrics(blessing).splitlines() == [
        "accuracy 0.800000",
        "macro_f1 0.790000",
        "accuracy_delta -0.150000",
        "mcnemar_p 1e-06",
        "blessed 0",
    ]
    invalid = ci_report(
        model="digits",
        summary={**summary, "success": False, "failures": ["test.label: missing [3]"]},
        blessing=None,
        links=[],
        context="",
    )
    assert "❌ data validation failed" in invalid
    assert "test.label: missing [3]" in invalid


def test_a_blessing_counts_only_for_the_data_and_model_this_run_made() -> None:
    from pipelines.core.report import ci_report, current_blessing

    blessing = {
        "blessed": True,
        "rules": [],
        "candidate": {"accuracy": 0.9, "model_sha256": "m1"},
        "provenance": {"data_fingerprint": "new"},
    }
    valid = {
        "success": True,
        "evaluated_expectations": 1,
        "failed_expectations": 0,
        "rows": {},
        "data_fingerprint": "new",
    }
    assert current_blessing(valid, blessing, "m1") is blessing
    for summary in (
        None,
        {**valid, "success": False},
        {**valid, "data_fingerprint": "old"},
        {k: v for k, v in valid.items() if k != "data_fingerprint"},
    ):
        assert current_blessing(summary, blessing, "m1") is None, summary
    # Same data, but this run's training failed (no model) or trained another model: the
    # blessing is an earlier run's (a restored artifacts cache), not this one's.
    assert current_blessing(valid, blessing, None) is None
    assert current_blessing(valid, blessing, "m2") is None
    assert current_blessing(valid, {**blessing, "candidate": {"accuracy": 0.9}}, "m1") is None
    # Validation failed on new data; the blessing on disk is an earlier run's on other data.
    stale = ci_report(
        model="digits",
        summary={**valid, "success": False, "failures": ["x"]},
        blessing=current_blessing(
            {**valid, "success": False},
            {**blessing, "provenance": {"data_fingerprint": "old"}},
            "m1",
        ),
        links=[],
        context="",
    )
    assert "✅" not in stale
    assert "❌ data validation failed" in stale


def test_the_report_says_which_release_the_baseline_was_and_how_fresh() -> None:
    from pipelines.core.report import baseline_origin

    assert baseline_origin({}) == ""
    assert baseline_origin({"source": "--baseline"}) == ""
    live = {"environment": "production", "release_id": "r-1"}
    assert baseline_origin(live) == "Baseline: `production` release `r-1`."
    bundled = {**live, "exported": "2026-12-01T10:00:00+00:00", "gitops_commit": "a" * 40}
    assert baseline_origin(bundled) == (
        "Baseline: `production` release `r-1`, from the bundle exported "
        "2026-12-01T10:00:00+00:00 (GitOps commit `aaaaaaaaaaaa`)."
    )


def test_the_promotion_body_carries_the_monitor_report_when_there_is_one() -> None:
    from pipelines.core.render import diff
    from pipelines.core.report import monitor_section, promotion_body

    report = (
        "# Monitoring report: production\n\n**Failing: drift**\n\n"
        "## digits: digits-000000000002 (blue)\n\n| signal | verdict |\n\n"
        "![digits-dashboard.png](digits-dashboard.png) ![d.png](d.png)\n"
    )
    lines = monitor_section("production", report)
    assert lines[1] == "## Monitoring report on production (why this retraining ran)"
    # Its headings sit under ours; its pictures are files of the job, not of the PR.
    assert "### Monitoring report: production" in lines
    assert "#### digits: digits-000000000002 (blue)" in lines
    assert not any("png" in line for line in lines)
    assert lines[-1] == "| signal | verdict |"
    assert monitor_section("production", None) == []
    assert monitor_section("production", "") == []

    args = {
        "env": "production",
        "source_env": "staging",
        "release": {
            "release_id": "digits-000000000003",
            "image": "r/d@sha256:" + "0" * 64,
            "model_sha256": "1" * 64,
            "source_commit": "a" * 40,
            "data_md5": "m",
        },
        "previous": "digits-000000000002",
        "summary": {"success": True, "rows": {"test": 3}},
        "blessing": {"blessed": True, "rules": [], "candidate": {"accuracy": 0.9}},
        "infra": {"rules": []},
        "diff": diff({}, {}),
        "sbom": "sbom",
    }
    with_report = promotion_body(**args, monitor=report)  # type: ignore[arg-type]
    assert with_report.endswith("\n".join(lines[1:]) + "\n")
    without = promotion_body(**args)  # type: ignore[arg-type]
    assert "Monitoring report" not in without
    assert with_report.startswith(without.rstrip("\n"))


TUNED = {
    "study": "digits-0123456789ab",
    "metric": "val_accuracy",
    "direction": "maximize",
    "value": 0.97531,
    "best_trial": 7,
    "finished_trials": 12,
    "states": {"COMPLETE": 9, "PRUNED": 3, "FAIL": 1},
    "importances": {"learning_rate": 0.7, "params.dropout": 0.3},
    "space_sha256": "0" * 64,
    "training": {"learning_rate": 0.0012, "params": {"dropout": 0.3}},
}


def test_a_tuned_model_gets_a_tuning_section_in_the_report_and_the_promotion() -> None:
    from pipelines.core.render import diff
    from pipelines.core.report import ci_report, promotion_body, tuning_section

    lines = tuning_section(TUNED)
    text = "\n".join(lines)
    assert lines[0] == "## Tuning"
    assert "study `digits-0123456789ab` (9 complete, 1 fail, 3 pruned trials)" in text
    assert "best trial #7, val_accuracy 0.9753 on the validation split" in text
    assert "| learning_rate  | `0.0012` |" in text
    assert "| params.dropout | `0.3`    |" in text
    assert "Importance (fANOVA): learning_rate 70%, params.dropout 30%" in text
    assert tuning_section(None) == []

    blessing = {"blessed": True, "rules": [], "candidate": {"accuracy": 0.9}}
    comment = ci_report(
        model="digits", summary=None, blessing=blessing, links=[], context="c", tuned=TUNED
    )
    assert "**Tuning**" in comment
    assert "Tuning" not in ci_report(
        model="digits", summary=None, blessing=blessing, links=[], context="c"
    )
    body = promotion_body(
        env="production",
        source_env="staging",
        release={
            "release_id": "digits-000000000003",
            "image": "r/d@sha256:" + "0" * 64,
            "model_sha256": "1" * 64,
            "source_commit": "a" * 40,
            "data_md5": "m",
        },
        previous=None,
        summary={"success": True, "rows": {"test": 3}},
        blessing=blessing,
        infra={"rules": []},
        diff=diff({}, {}),
        sbom="sbom",
        tuned=TUNED,
    )
    assert body.index("## Gate") < body.index("## Tuning") < body.index("## Image")


def test_a_regressor_s_report_shows_its_errors_wilcoxon_and_its_slices() -> None:
    from pipelines.core.report import ci_report, gitlab_metrics

    blessing = {
        "blessed": True,
        "rules": [{"rule": "max_mae", "passed": True, "reason": "mae 41.3 <= limit 55"}],
        "baseline": {"metrics": {"task": "regression", "rmse": 54.0, "mae": 42.0, "r2": 0.47}},
        "comparison": {
            "n": 111,
            "candidate_mae": 41.3,
            "baseline_mae": 42.0,
            "delta": -0.7,
            "ci_low": -1.9,
            "ci_high": 0.4,
            "wilcoxon_statistic": 2800.0,
            "p_value": 0.21,
        },
        "candidate": {"task": "regression", "rmse": 53.25, "mae": 41.3, "r2": 0.4872},
        "slices": [
            {
                "name": "sex=1",
                "n": 60,
                "candidate": 41.19,
                "baseline": 42.5,
                "judged": True,
                "passed": True,
                "reason": "ok",
            },
            {
                "name": "bmi in [30, inf)",
                "n": 22,
                "candidate": 46.29,
                "baseline": None,
                "judged": False,
                "passed": True,
                "reason": "too small",
            },
        ],
    }
    text = ci_report(
        model="diabetes", summary=None, blessing=blessing, links=[], context="commit abc"
    )
    mae_row = (
        "| mae    | 41.3      | 42         | -0.7    | [-1.9, +0.4] | Wilcoxon signed-rank p=0.21"
    )
    assert mae_row in text
    assert "| r2     | 0.4872    | 0.47       | +0.0172 |" in text
    assert "Per-class recall" not in text  # a regressor has no classes
    assert "<details><summary>Slices (MAE): 2, 0 failed</summary>" in text
    assert "| bmi in [30, inf) | 22   | 46.29     | n/a        | too small to judge |" in text
    assert gitlab_metrics(blessing).splitlines() == [
        "rmse 53.25",
        "mae 41.3",
        "r2 0.4872",
        "abs_error_delta -0.7",
        "wilcoxon_p 0.21",
        "blessed 1",
    ]
