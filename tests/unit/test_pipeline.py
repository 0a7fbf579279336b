"""The stage registry is the one table behind both the per-stage commands and `mlops run`."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines import cli, pipeline
from pipelines.adapters import dvc
from pipelines.config import Workspace, load_gitops, load_model
from pipelines.core import dvcgraph
from pipelines.errors import GateFailed

ROOT = Path(__file__).resolve().parents[2]


def test_the_registry_lists_the_pipeline_in_order() -> None:
    assert [s for s in pipeline.STAGES if s not in pipeline.MANUAL] == dvcgraph.PIPELINE


def test_every_stage_is_a_command_with_the_registrys_help() -> None:
    action = next(a for a in cli._parser()._actions if a.dest == "command")
    assert isinstance(action, argparse._SubParsersAction)
    subparsers = action._name_parser_map
    for name, stage in pipeline.STAGES.items():
        assert subparsers[name].description == stage.help
        assert cli.STAGE_COMMANDS[name] is cli._stage


def _replace(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    execute: Callable[[Workspace, pipeline.Options], str],
) -> list[pipeline.Options]:
    """Swap one stage's run function for ``execute``; return the options it was called with."""
    seen: list[pipeline.Options] = []

    def spy(ws: Workspace, opts: pipeline.Options) -> str:
        seen.append(opts)
        return execute(ws, opts)

    stage = dataclasses.replace(pipeline.STAGES[name], execute=spy)
    monkeypatch.setitem(pipeline.STAGES, name, stage)
    return seen


def test_the_command_and_run_print_the_same_summary(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    seen = _replace(monkeypatch, "ingest", lambda ws, opts: "wrote 3 rows")
    assert cli.main(["ingest"]) == 0
    assert capsys.readouterr().out == "ingest: wrote 3 rows\n"

    result = pipeline.run(load_model(ROOT, "digits"), until="ingest", progress=lambda _: None)
    assert [(r.stage, r.status, r.detail) for r in result.reports] == [
        ("ingest", "ran", "wrote 3 rows")
    ]
    assert len(seen) == 2


def test_the_cli_passes_its_flags_and_run_passes_gitops_yamls_environments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    seen = _replace(monkeypatch, "promote", lambda ws, opts: "opened #1")
    assert cli.main(["promote", "--to", "staging", "--from", "production"]) == 0
    assert (seen[-1].to_env, seen[-1].from_env) == ("staging", "production")
    assert capsys.readouterr().out == "promote: opened #1\n"

    for name in pipeline.STAGES:
        if name != "promote":
            _replace(monkeypatch, name, lambda ws, opts: "ok")
    monkeypatch.setattr(dvc, "changed_stages", lambda root, stages: stages)
    monkeypatch.setattr(dvc, "commit", lambda root, stage: None)
    pipeline.run(load_model(ROOT, "digits"), progress=lambda _: None)
    gitops = load_gitops(ROOT)
    assert (seen[-1].to_env, seen[-1].from_env) == (
        gitops.promote_environment,
        gitops.release_environment,
    )


def test_a_refusal_stops_the_run_and_later_stages_do_not_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(ws: Workspace, opts: pipeline.Options) -> str:
        raise GateFailed("the gate refused the candidate")

    monkeypatch.chdir(ROOT)
    for name in ("ingest", "validate", "train", "evaluate"):
        _replace(monkeypatch, name, lambda ws, opts: "ok")
    monkeypatch.setattr(dvc, "changed_stages", lambda root, stages: stages)
    monkeypatch.setattr(dvc, "commit", lambda root, stage: None)
    _replace(monkeypatch, "gate", refuse)
    result = pipeline.run(load_model(ROOT, "digits"), until="verify", progress=lambda _: None)
    assert isinstance(result.error, GateFailed)
    assert [(r.stage, r.status) for r in result.reports][-3:] == [
        ("gate", "failed"),
        ("package", "not run"),
        ("verify", "not run"),
    ]
