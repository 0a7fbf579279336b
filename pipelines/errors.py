"""One exception hierarchy. Each class carries the exit code DESIGN.md assigns to it.

Messages are written for the person reading CI logs: what failed, then what to do next.
"""

from __future__ import annotations


class MlopsError(Exception):
    """Base class. ``exit_code`` is what the CLI returns; ``hint`` says what to do next."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class CheckFailed(MlopsError):
    """A check said no: data invalid, gate failed, policy violated. Exit 1."""

    exit_code = 1


class DataInvalid(CheckFailed):
    """The dataset broke its expectation suite."""


class GateFailed(CheckFailed):
    """The candidate model did not earn a blessing."""


class ConfigError(MlopsError):
    """Usage or configuration error (bad model.yaml, missing input file, wrong flag). Exit 2."""

    exit_code = 2


class InfraError(MlopsError):
    """Infrastructure unavailable: docker daemon, registry, git remote. Exit 3."""

    exit_code = 3


class EvidenceError(ConfigError):
    """A record one stage hands to the next (pipelines/evidence.py) is missing, unreadable, of
    another schema version, or not for the exact artifact, data and settings on disk. Exit 2,
    like any other usage error: the stages were run out of order or their inputs changed since;
    re-running the stage that writes the record fixes it. (A record that is current but says
    no, a failed validation, gate or verification, keeps its check's exit 1.)"""
