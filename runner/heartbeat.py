"""runner.json: who supervises this runs folder, and that it is still alive."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

from runstore.models import ClusterInfo, RunnerInfo
from runstore.store import RunStore

VERSION = "0.1.0"
#: runner.json is rewritten this often, so its age stays under 5 s even just before the next
#: write (readers call a runner stale well after that; see the dashboard's System page).
HEARTBEAT_SECONDS = 2.0


class Heartbeat:
    def __init__(self, store: RunStore):
        self.store = store
        self.started = time.time()
        #: When the next write is due (wall clock); 0 makes the next ``beat`` write.
        self.next_at = 0.0

    def beat(
        self,
        max_concurrent: int,
        force: bool = False,
        cluster: Callable[[], ClusterInfo] | None = None,
    ) -> None:
        """Write runner.json when due (cheap to call often), or now with ``force``;
        ``cluster`` gives the Ray cluster's view when runs go there (called only then)."""
        now = time.time()
        if force or now >= self.next_at:
            self.next_at = now + HEARTBEAT_SECONDS
            self.store.write_runner_info(
                RunnerInfo(
                    pid=os.getpid(),
                    host=socket.gethostname(),
                    started=self.started,
                    heartbeat_at=now,
                    version=VERSION,
                    max_concurrent=max_concurrent,
                    cluster=cluster() if cluster is not None else None,
                )
            )
