"""The run store: the one module that knows the on-disk format of the runs folder."""

from runstore.config import ConfigError, RunConfig, parse_config, resolve
from runstore.models import RunRecord, RunState, TrainStatus
from runstore.paths import RunPaths, UnsafePathError, default_runs_dir, is_run_id
from runstore.store import Request, RunStore, read_status_file, write_status_file

__all__ = [
    "ConfigError",
    "Request",
    "RunConfig",
    "RunPaths",
    "RunRecord",
    "RunState",
    "RunStore",
    "TrainStatus",
    "UnsafePathError",
    "default_runs_dir",
    "is_run_id",
    "parse_config",
    "read_status_file",
    "resolve",
    "write_status_file",
]
