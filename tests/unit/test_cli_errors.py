"""Every failure reaches the user as one readable line with its documented exit code: the
hierarchy's errors, a provider's 4xx, and a bug (exit 70, traceback only with --debug)."""

from __future__ import annotations

import pytest

from pipelines import cli
from pipelines.adapters import scm
from pipelines.errors import ConfigError


def _boom(*_: object) -> int:
    raise KeyError("no such thing")


def _refused(*_: object) -> int:
    raise scm.ApiError("GitHub POST /repos/acme/gitops/pulls: HTTP 422: a pull request exists")


def test_a_bug_is_exit_70_with_one_line_and_the_traceback_behind_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(cli.REPO_COMMANDS, "render", _boom)
    assert cli.main(["render"]) == cli.INTERNAL_ERROR == 70
    err = capsys.readouterr().err
    assert err.startswith("mlops render: internal error (a bug in mlops): KeyError:")
    assert "re-run with --debug" in err
    assert "Traceback" not in err
    assert cli.main(["--debug", "render"]) == 70
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    monkeypatch.setenv("MLOPS_DEBUG", "true")
    assert cli.main(["render"]) == 70
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    monkeypatch.setenv("MLOPS_DEBUG", "maybe")  # a typo is refused, not read as "off"
    assert cli.main(["render"]) == 2
    assert "mlops: error: MLOPS_DEBUG='maybe' is not a flag" in capsys.readouterr().err


def test_a_provider_refusal_is_a_configuration_error_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert issubclass(scm.ApiError, ConfigError)
    monkeypatch.setitem(cli.REPO_COMMANDS, "render", _refused)
    assert cli.main(["render"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlops render: error: GitHub POST /repos/acme/gitops/pulls: HTTP 422")
    assert "Traceback" not in err


def test_a_bug_message_does_not_leak_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_GITOPS_TOKEN", "s3cr3t-token-value")

    def leak(*_: object) -> int:
        raise RuntimeError("failed with s3cr3t-token-value in https://u:pw@host/x")

    monkeypatch.setitem(cli.REPO_COMMANDS, "render", leak)
    assert cli.main(["render"]) == 70
    err = capsys.readouterr().err
    assert "s3cr3t" not in err
    assert "pw@" not in err
