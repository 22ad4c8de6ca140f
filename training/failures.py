"""Transitional, deleted when branch runnersplit merges: runner/supervisor.py (owned by that
branch) still imports ``explain`` from here; it then imports it from :mod:`machine.failures`,
where the classifier lives. Nothing else may import this module."""

from machine.failures import explain

__all__ = ["explain"]
