"""GitOps CI/CD for ML services: stage code behind the ``mlops`` command."""

__version__ = "0.1.0"
