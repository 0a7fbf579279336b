"""pipelines/config/settings.py: every environment variable mlops reads, read in one place, at
call time, with the semantics the scattered reads had; secrets never shown."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pipelines.config import ENV_OVERRIDES, load_gitops, read_settings, reveal
from pipelines.errors import ConfigError

PACKAGE = Path(__file__).resolve().parents[2] / "pipelines"
# The one module that reads variables, and the server, which stands alone in its image and
# reads its own (serving/settings.py, serving/smoke.py).
EXEMPT = {PACKAGE / "config" / "settings.py"}
EXEMPT_DIRS = {PACKAGE / "serving"}

SECRETS = {
    "MLOPS_GITOPS_TOKEN": "write-token-value-1",
    "MLOPS_GITOPS_READ_TOKEN": "read-token-value-2",
    "GITHUB_TOKEN": "github-token-value-3",
    "GITLAB_TOKEN": "gitlab-token-value-4",
    "CI_JOB_TOKEN": "job-token-value-5",
    "REGISTRY_PASSWORD": "registry-password-6",
}


# --- No module but settings.py reads the environment ---------------------------------------


def environment_reads(source: str) -> list[int]:
    """Line numbers where ``source`` reads an environment variable: os.getenv(...),
    os.environ.get(...), os.environ[...], "X" in os.environ, an alias (env = os.environ), or
    ``from os import environ``. Not reads: handing the whole environment on to a child
    ({**os.environ}, os.environ.copy(), os.environ | {...}, dict(os.environ), env=os.environ),
    and setting a variable (os.environ[...] = ..., os.environ.setdefault/update)."""
    tree = ast.parse(source)
    parent = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and {a.name for a in node.names} & {"environ", "environb", "getenv", "getenvb"}
        ):
            lines.append(node.lineno)
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
            continue
        if node.value.id != "os" or node.attr not in ("environ", "environb", "getenv", "getenvb"):
            continue
        up = parent.get(node)
        handed_on_or_set = node.attr.startswith("environ") and (
            (isinstance(up, ast.Attribute) and up.attr in ("copy", "setdefault", "update"))
            or isinstance(up, ast.Dict | ast.BinOp)
            or (isinstance(up, ast.Subscript) and not isinstance(up.ctx, ast.Load))
            or (isinstance(up, ast.keyword) and up.arg == "env")
            or (isinstance(up, ast.Call) and isinstance(up.func, ast.Name) and up.func.id == "dict")
        )
        if not handed_on_or_set:
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(
    "code",
    [
        "import os\nx = os.environ.get('A')",
        "import os\nx = os.environ['A']",
        "import os\nx = os.getenv('A', '')",
        "import os\nx = 'A' in os.environ",
        "import os\nx = [k for k, v in os.environ.items()]",
        "from os import environ",
        "from os import getenv as g",
        "import os\nenviron = os.environ if env is None else env",
        "import os\nread(os.environ)",
    ],
)
def test_the_scan_sees_every_way_of_reading_a_variable(code: str) -> None:
    assert environment_reads(code)


@pytest.mark.parametrize(
    "code",
    [
        "import os\nenv = {**os.environ, 'LC_ALL': 'C'}",
        "import os\nenv = os.environ.copy()",
        "import os\nenv = os.environ | {'A': '1'}",
        "import os\nos.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')",
        "import os\nos.environ['A'] = '1'",
        "import os\nenv = dict(os.environ)",
        "import os, subprocess\nsubprocess.run(['git'], env=os.environ)",
    ],
)
def test_handing_the_environment_on_is_not_a_read(code: str) -> None:
    assert environment_reads(code) == []


def test_only_the_settings_module_reads_environment_variables() -> None:
    modules = [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in EXEMPT and not any(path.is_relative_to(d) for d in EXEMPT_DIRS)
    ]
    assert PACKAGE / "cli.py" in modules
    assert PACKAGE / "config" / "loading.py" in modules
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for path in modules
        for line in environment_reads(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], (
        "read environment variables through pipelines.config.read_settings(), not os.environ"
    )


# --- What read_settings() returns -----------------------------------------------------------


def test_defaults_with_nothing_set() -> None:
    s = read_settings({})
    assert s.debug is False
    assert s.ci is False
    assert s.registry_insecure is False
    assert s.registry == "127.0.0.1:5000"
    assert s.gitops_overrides == ()
    assert s.tokens == (None, None, None, None, None)
    assert s.registry_password is None
    assert s.artifacts_url == s.base_image == s.docker_host == s.commit_sha == ""
    assert s.docker_config_dir == Path.home() / ".docker"
    assert s.cache_home == Path.home() / ".cache"


def test_values_keep_the_semantics_of_the_reads_they_replaced() -> None:
    s = read_settings(
        {
            "MLOPS_DEBUG": "off",
            "CI": "gitlab",  # any value but a false-like one
            "REGISTRY": "ghcr.io/team/",
            "REGISTRY_USERNAME": "",  # empty: GitLab's name is used
            "CI_REGISTRY_USER": "gitlab-ci-token",
            "CI_REGISTRY_PASSWORD": "job-pass",
            "GITHUB_SHA": "",
            "CI_COMMIT_SHA": "abc123",
            "DOCKER_CONFIG": "/tmp/docker-config",
            "XDG_CACHE_HOME": "/tmp/cache",
            "GITHUB_TOKEN": "",  # empty is unset
        }
    )
    assert s.debug is False
    assert s.ci is True
    assert s.registry == "ghcr.io/team"
    assert s.registry_username == "gitlab-ci-token"
    assert reveal(s.registry_password) == "job-pass"
    assert s.commit_sha == "abc123"
    assert s.docker_config_dir == Path("/tmp/docker-config")
    assert s.cache_home == Path("/tmp/cache")
    assert s.github_token is None
    assert read_settings({"MLOPS_DEBUG": "1", "REGISTRY_INSECURE": "1"}).debug is True
    # Empty is unset (GitHub's unset `vars.REGISTRY`): gitops.yaml's registry, then the default.
    assert read_settings({"REGISTRY": ""}).registry == "127.0.0.1:5000"
    assert not read_settings({"REGISTRY": ""}).registry_set
    assert not read_settings({}).registry_set


@pytest.mark.parametrize(
    ("value", "on"),
    [
        *[("1", True), ("true", True), ("YES", True), (" on ", True)],
        *[("", False), ("0", False), ("False", False), ("no", False), ("off", False)],
    ],
)
def test_flags_read_the_usual_spellings(value: str, on: bool) -> None:
    s = read_settings({"MLOPS_DEBUG": value, "REGISTRY_INSECURE": value, "CI": value})
    assert (s.debug, s.registry_insecure, s.ci) == (on, on, on)


@pytest.mark.parametrize("var", ["MLOPS_DEBUG", "REGISTRY_INSECURE"])
def test_a_flag_that_is_no_flag_is_refused_not_read_as_off(var: str) -> None:
    with pytest.raises(ConfigError, match=f"{var}='ture' is not a flag") as caught:
        read_settings({var: "ture"})
    assert caught.value.exit_code == 2


def test_gitops_overrides_are_the_set_ones_in_their_order() -> None:
    env = {var: f"value-of-{var}" for var in reversed(list(ENV_OVERRIDES))}
    env["MLOPS_GITOPS_PATH"] = ""
    overrides = read_settings(env).gitops_overrides
    assert [var for var, _ in overrides] == [v for v in ENV_OVERRIDES if v != "MLOPS_GITOPS_PATH"]
    assert all(value == f"value-of-{var}" for var, value in overrides)


def test_settings_are_read_when_asked_not_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASE_IMAGE", "first")
    assert read_settings().base_image == "first"
    monkeypatch.setenv("BASE_IMAGE", "second")
    assert read_settings().base_image == "second"
    monkeypatch.delenv("BASE_IMAGE")
    assert read_settings().base_image == ""


def test_secrets_are_in_no_repr_or_str() -> None:
    s = read_settings(SECRETS)
    for shown in (repr(s), str(s), *(repr(t) for t in s.tokens), f"{s.registry_password}"):
        for value in SECRETS.values():
            assert value not in shown
    assert [reveal(t) for t in s.tokens] == list(SECRETS.values())[:5]
    assert reveal(s.registry_password) == SECRETS["REGISTRY_PASSWORD"]
    assert reveal(None) == ""


@pytest.mark.parametrize(
    ("var", "value", "key"),
    [
        ("MLOPS_GIT_TIMEOUT", "soon", "git_timeout"),
        ("MLOPS_GIT_TIMEOUT", "0", "git_timeout"),
        ("MLOPS_SCM_PROVIDER", "bitbucket", "provider"),
        ("MLOPS_GITOPS_BRANCH", "main branch", "branch"),
    ],
)
def test_a_bad_value_is_refused_naming_the_key_and_the_variable(
    tmp_path: Path, var: str, value: str, key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_gitops(tmp_path, env={var: value})
    message = str(caught.value)
    assert key in message
    assert var in message
    assert "the environment variable that overrides it" in (caught.value.hint or "")


def test_an_explicit_env_ignores_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_GITOPS_BRANCH", "from-the-process")
    assert load_gitops(tmp_path).branch == "from-the-process"
    assert load_gitops(tmp_path, env={}).branch == "main"
