"""Every environment variable mlops reads, in one typed place.

``read_settings()`` reads them all and returns a fresh, frozen ``Settings``. It is called where
a value is needed, never at import: a CI job's variables and a test's monkeypatched ones are
seen by the next call, as they were when each module read ``os.environ`` itself. No module of
``pipelines`` but this one reads a variable (tests/unit/test_settings.py scans for that), with
one deliberate exception: ``pipelines/serving/`` is the model server inside the image, which
holds that folder only, so it reads its own ``MLOPS_*`` variables (serving/settings.py,
serving/smoke.py) and import-linter forbids it from importing ``pipelines.config``.

Handing the whole environment on to a child process (git, docker, dvc) is not reading a
variable; that stays where the child is started. Neither is setting a library's default in
our own process (``os.environ.setdefault`` for TensorFlow's log level and DVC's analytics).

Why a frozen dataclass built by one function, not pydantic-settings: pydantic-settings is not
among the project's dependencies, nor in the ``report`` extra, which is all that CI's report
job installs (a test keeps the report's imports within it). And what these variables mean is
mostly "unset or empty: absent" and "this CI's name, else that one's", which reads more plainly
written out in ``read_settings`` than as pydantic-settings' aliases and parsing rules.

An empty value counts as unset. A flag (MLOPS_DEBUG,
REGISTRY_INSECURE) is on for 1/true/yes/on and off for 0/false/no/off or unset, in any case;
any other value is refused (ConfigError, exit 2) rather than read as "off", because
``REGISTRY_INSECURE=ture`` silently meaning "off" hides the typo. CI is what CI systems set: off
when unset or false-like, on for any other value (they set "true", "1" or their own name).
Values are not validated here beyond that: the GitOps
overrides are strings that ``load_gitops`` validates with gitops.yaml's own schema, so a bad
one fails there as a ConfigError naming the key and the variable.

Secrets (tokens, the registry password) are ``SecretStr``: ``repr()`` and ``str()`` show
``**********``; ``reveal()`` gives the value to the one place that hands it on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from pipelines.errors import ConfigError

DEFAULT_REGISTRY = "127.0.0.1:5000"  # the registry scripts/infra.sh starts

# The GitOps repository's write token and its read-only one, in that order.
GITOPS_TOKEN_VARS = ("MLOPS_GITOPS_TOKEN", "MLOPS_GITOPS_READ_TOKEN")

# Environment variables that override manifests/gitops.yaml (variable -> key path); CI sets the
# ones it knows.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "MLOPS_GITOPS_REMOTE": ("remote",),
    "MLOPS_GITOPS_BRANCH": ("branch",),
    "MLOPS_GITOPS_PATH": ("path",),
    "MLOPS_GITOPS_REPO_URL": ("repo_url",),
    "MLOPS_GIT_TIMEOUT": ("git_timeout",),
    "MLOPS_SCM_PROVIDER": ("provider",),
    "GITHUB_API_URL": ("github", "api_url"),
    "GITHUB_REPOSITORY": ("github", "repository"),
    "CI_API_V4_URL": ("gitlab", "api_url"),
    "CI_PROJECT_ID": ("gitlab", "project"),
    # Later entries win: a separate GitOps repository (GITHUB_* cannot be overridden in Actions).
    "MLOPS_GITHUB_REPOSITORY": ("github", "repository"),
    "MLOPS_GITLAB_PROJECT": ("gitlab", "project"),
}


@dataclass(frozen=True)
class Settings:
    """The variables, by what they are for. Strings are "" when the variable is unset."""

    # --- mlops's own ---------------------------------------------------------------------
    debug: bool  # MLOPS_DEBUG: print the traceback of an internal error
    artifacts_url: str  # MLOPS_ARTIFACTS_URL: where CI stored artifacts/, for the report
    # (variable, value) of each ENV_OVERRIDES variable that is set, in ENV_OVERRIDES's order
    gitops_overrides: tuple[tuple[str, str], ...]
    gitops_token: SecretStr | None  # MLOPS_GITOPS_TOKEN: write, pushes included
    gitops_read_token: SecretStr | None  # MLOPS_GITOPS_READ_TOKEN: clones and fetches only
    git_name: str  # MLOPS_GIT_NAME: the author of mlops's commits
    git_email: str  # MLOPS_GIT_EMAIL
    pr_number: str  # MLOPS_PR_NUMBER: the pull request the report comments on
    # MLOPS_BASELINE: `--baseline`'s default for gate and run, and `baseline export`/`fetch`'s
    # --out (CI: the bundle folder a pull request's gate compares against)
    baseline: str
    # MLOPS_GUARD_TOKEN: the bearer token Alertmanager's webhooks to `mlops guard` must carry
    guard_token: SecretStr | None
    # MLOPS_PROMETHEUS_URL: the Prometheus `mlops monitor` queries when --prometheus is not given
    prometheus_url: str
    # MLOPS_TUNE_STORAGE: `mlops tune --storage`'s default, the study's database URL (a
    # PostgreSQL DSN holds a password: a variable from a Secret keeps it out of `ps`)
    tune_storage: SecretStr | None

    # --- multi-worker training ------------------------------------------------------------
    tf_config: str  # TF_CONFIG: this process is one worker of a cluster (`mlops train --worker`)
    job_completion_index: str  # JOB_COMPLETION_INDEX: the pod's index in an Indexed Job
    # KUBECONFIG: the kubeconfig(s) `mlops cluster-job` applies with (see kubeconfig_files);
    # read here because the client reads it once, at its import
    kubeconfig: str
    # KUBERNETES_SERVICE_HOST: set in every pod, so this runs in a cluster and its service
    # account is the credential when no kubeconfig is configured
    kubernetes_service_host: str
    # MLOPS_DVC_CREDENTIALS: base64 of a .dvc/config.local holding a READ-only credential for
    # the DVC remote (`mlops data pull` writes it for the pull's duration only); base64 so that
    # GitLab can mask it (a masked variable is one line)
    dvc_credentials: SecretStr | None

    # --- the registry and the container engine -------------------------------------------
    registry: str  # REGISTRY (host[:port][/namespace]), trailing "/" dropped
    registry_set: bool  # REGISTRY is set (not empty): it wins over gitops.yaml's registry
    registry_insecure: bool  # REGISTRY_INSECURE: plain HTTP to a non-loopback registry
    registry_username: str  # REGISTRY_USERNAME, else GitLab's CI_REGISTRY_USER
    registry_password: SecretStr | None  # REGISTRY_PASSWORD, else CI_REGISTRY_PASSWORD
    docker_config: str  # DOCKER_CONFIG (see docker_config_dir)
    docker_host: str  # DOCKER_HOST: a remote engine (tcp://docker:2375 under dind)
    base_image: str  # BASE_IMAGE: the serving image's base, pinned by digest

    # --- SCM API tokens --------------------------------------------------------------------
    github_token: SecretStr | None  # GITHUB_TOKEN
    gitlab_token: SecretStr | None  # GITLAB_TOKEN
    ci_job_token: SecretStr | None  # CI_JOB_TOKEN (GitLab's job token)

    # --- what CI tells us about the run ---------------------------------------------------
    ci: bool  # CI set and not false-like: quiet progress output
    github_server_url: str  # GITHUB_SERVER_URL
    github_repository: str  # GITHUB_REPOSITORY (owner/name)
    github_ref: str  # GITHUB_REF (refs/pull/<n>/merge on a pull request)
    github_run_id: str  # GITHUB_RUN_ID
    ci_merge_request_iid: str  # CI_MERGE_REQUEST_IID
    ci_api_url: str  # CI_API_V4_URL
    # CI_MERGE_REQUEST_PROJECT_ID (the merge request's target project), else CI_PROJECT_ID:
    # where the default branch's baseline bundle is kept
    ci_target_project: str
    ci_default_branch: str  # CI_DEFAULT_BRANCH
    ci_project_url: str  # CI_PROJECT_URL
    ci_pipeline_url: str  # CI_PIPELINE_URL
    commit_sha: str  # GITHUB_SHA, else CI_COMMIT_SHA

    # --- the user's folders ----------------------------------------------------------------
    xdg_cache_home: str  # XDG_CACHE_HOME (see cache_home)

    @property
    def docker_config_dir(self) -> Path:
        """Where ``docker login`` keeps credentials: DOCKER_CONFIG, else ~/.docker."""
        return Path(self.docker_config or Path.home() / ".docker")

    @property
    def cache_home(self) -> Path:
        """XDG_CACHE_HOME, else ~/.cache."""
        return Path(self.xdg_cache_home or Path.home() / ".cache")

    @property
    def kubeconfig_files(self) -> list[Path]:
        """The kubeconfig files configured: KUBECONFIG's list (os.pathsep-separated, as kubectl
        reads it), else ~/.kube/config if it exists, else none."""
        if self.kubeconfig:
            return [Path(p).expanduser() for p in self.kubeconfig.split(os.pathsep) if p]
        default = Path.home() / ".kube" / "config"
        return [default] if default.exists() else []

    @property
    def tokens(self) -> tuple[SecretStr | None, ...]:
        """Every token a message could echo back, for scrubbing it (gitops.redact)."""
        return (
            self.gitops_token,
            self.gitops_read_token,
            self.github_token,
            self.gitlab_token,
            self.ci_job_token,
        )


_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"", "0", "false", "no", "off"})


def _flag(environ: Mapping[str, str], var: str) -> bool:
    value = environ.get(var, "").strip().lower()
    if value in _ON | _OFF:
        return value in _ON
    raise ConfigError(
        f"{var}={environ[var]!r} is not a flag",
        hint=f"set {var} to 1, true, yes or on (or 0, false, no, off, or unset it)",
    )


def read_settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings from ``env``, else from the process environment as it is now."""
    environ: Mapping[str, str] = os.environ if env is None else env

    def text(var: str) -> str:
        return environ.get(var) or ""

    def secret(*names: str) -> SecretStr | None:
        value = next((environ[n] for n in names if environ.get(n)), "")
        return SecretStr(value) if value else None

    return Settings(
        debug=_flag(environ, "MLOPS_DEBUG"),
        artifacts_url=text("MLOPS_ARTIFACTS_URL"),
        gitops_overrides=tuple((var, environ[var]) for var in ENV_OVERRIDES if environ.get(var)),
        gitops_token=secret("MLOPS_GITOPS_TOKEN"),
        gitops_read_token=secret("MLOPS_GITOPS_READ_TOKEN"),
        git_name=text("MLOPS_GIT_NAME"),
        git_email=text("MLOPS_GIT_EMAIL"),
        pr_number=text("MLOPS_PR_NUMBER"),
        baseline=text("MLOPS_BASELINE"),
        guard_token=secret("MLOPS_GUARD_TOKEN"),
        prometheus_url=text("MLOPS_PROMETHEUS_URL"),
        dvc_credentials=secret("MLOPS_DVC_CREDENTIALS"),
        tune_storage=secret("MLOPS_TUNE_STORAGE"),
        tf_config=text("TF_CONFIG"),
        job_completion_index=text("JOB_COMPLETION_INDEX"),
        kubeconfig=text("KUBECONFIG"),
        kubernetes_service_host=text("KUBERNETES_SERVICE_HOST"),
        # Empty is unset, as for the others: GitHub passes an unset `vars.REGISTRY` as "", and
        # gitops.yaml's registry (what `mlops configure` wrote) must then apply.
        registry=(text("REGISTRY") or DEFAULT_REGISTRY).rstrip("/"),
        registry_set=bool(text("REGISTRY")),
        registry_insecure=_flag(environ, "REGISTRY_INSECURE"),
        registry_username=text("REGISTRY_USERNAME") or text("CI_REGISTRY_USER"),
        registry_password=secret("REGISTRY_PASSWORD", "CI_REGISTRY_PASSWORD"),
        docker_config=text("DOCKER_CONFIG"),
        docker_host=text("DOCKER_HOST"),
        base_image=text("BASE_IMAGE"),
        github_token=secret("GITHUB_TOKEN"),
        gitlab_token=secret("GITLAB_TOKEN"),
        ci_job_token=secret("CI_JOB_TOKEN"),
        ci=environ.get("CI", "").strip().lower() not in _OFF,
        github_server_url=text("GITHUB_SERVER_URL"),
        github_repository=text("GITHUB_REPOSITORY"),
        github_ref=text("GITHUB_REF"),
        github_run_id=text("GITHUB_RUN_ID"),
        ci_merge_request_iid=text("CI_MERGE_REQUEST_IID"),
        ci_api_url=text("CI_API_V4_URL"),
        ci_target_project=text("CI_MERGE_REQUEST_PROJECT_ID") or text("CI_PROJECT_ID"),
        ci_default_branch=text("CI_DEFAULT_BRANCH"),
        ci_project_url=text("CI_PROJECT_URL"),
        ci_pipeline_url=text("CI_PIPELINE_URL"),
        commit_sha=text("GITHUB_SHA") or text("CI_COMMIT_SHA"),
        xdg_cache_home=text("XDG_CACHE_HOME"),
    )


def reveal(secret: SecretStr | None) -> str:
    """A secret's value ("" when unset), for the one place that hands it on."""
    return secret.get_secret_value() if secret is not None else ""
