"""Queue intake at its limits (RELIABILITY.md CFG-07 and CFG-11), against a real runner.

* 2,000 files dropped at once: more events than a watcher may deliver in order; the runner's
  rescan on every loop must still handle each file exactly once.
* rejected/ cannot be written: a bad file stays in the queue with its reason beside it, the
  files after it are still taken, the runner does not spin on it, and once the folder is
  fixed the file is rejected normally.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter

from runstore import RunState
from runstore.store import ERROR_SUFFIX

from .conftest import Runs, cartpole, wait_for

FLOOD = 2_000
VALID = 6
BAD_KINDS = (
    "algo: ppo\nenv: CartPole-v1\nn_timesteps: -5\n",  # out of range
    "algo: [unclosed\n",  # not YAML
    "algo: a2c\nenv: CartPole-v1\nn_timesteps: 100\n",  # unknown algorithm
    "just text\n",  # not a mapping
)


def test_two_thousand_files_at_once_are_each_handled_once(runs: Runs):
    runs.runner("--max-concurrent", "2")
    queue = runs.store.queue_dir
    every = FLOOD // VALID
    names = []
    for i in range(FLOOD):  # written straight into the queue, as fast as Python can
        if i % every == 0 and i // every < VALID:
            name = f"flood-ok-{i // every:02d}.yaml"
            text = cartpole(steps=64, ckpt=64, extra=f"name: {name[:-5]}\n")
        else:
            name = f"flood-bad-{i:04d}.yaml"
            text = BAD_KINDS[i % len(BAD_KINDS)]
        (queue / name).write_text(text)
        names.append(name)
    valid = {n for n in names if n.startswith("flood-ok-")}
    assert len(set(names)) == FLOOD and len(valid) == VALID

    def handled() -> bool:  # the queue is empty and the last file's move is complete
        moved = [p for p in runs.store.rejected_dir.iterdir() if not p.name.startswith(".")]
        done = len(moved) + 2 * len(runs.store.run_ids())  # a file and its note, or a run
        return not runs.store.queue_files() and done >= 2 * FLOOD

    wait_for(handled, 300, "every file to be rejected or become a run")
    rejected = [
        p.name for p in runs.store.rejected_dir.iterdir() if not p.name.endswith(ERROR_SUFFIX)
    ]
    assert Counter(rejected) == Counter(n for n in names if n not in valid)  # each once
    notes = {p.name for p in runs.store.rejected_dir.iterdir() if p.name.endswith(ERROR_SUFFIX)}
    assert notes == {n + ERROR_SUFFIX for n in rejected}

    ids = runs.store.run_ids()
    assert len(ids) == VALID  # no valid file started twice, none lost
    sources = Counter(runs.store.read_config(i).display_name for i in ids)
    assert sources == Counter(n[:-5] for n in valid)
    for run_id in ids:
        assert (
            runs.wait_state(run_id, RunState.COMPLETED, RunState.FAILED).state is RunState.COMPLETED
        )


def test_bad_file_that_cannot_be_moved_stays_with_its_reason(runs: Runs):
    rejected = runs.store.rejected_dir
    shutil.rmtree(rejected)
    rejected.write_text("a file where the rejected folder should be\n")
    runner = runs.runner("--poll", "0.1")
    bad = runs.store.queue_dir / "bad.yaml"
    bad.write_text("algo: ppo\nenv: CartPole-v1\nn_timesteps: -5\n")
    time.sleep(0.05)
    runs.submit(cartpole(steps=64, ckpt=64, extra="name: after-the-bad-one\n"), "good.yaml")

    note = bad.with_name(bad.name + ERROR_SUFFIX)
    wait_for(note.exists, 30, "a note beside the stuck file")
    text = note.read_text()
    assert "n_timesteps" in text and "stays in the queue" in text and str(rejected) in text
    run_id = runs.only_run()  # the good file after it was still taken
    assert runs.wait_state(run_id, RunState.COMPLETED, RunState.FAILED).state is RunState.COMPLETED
    assert bad.exists() and rejected.is_file()  # nothing lost, nothing overwritten
    assert [p.name for p in runs.store.queue_files()] == ["bad.yaml"]  # the note is no config

    time.sleep(2.0)  # 20 polls: a runner that spins would log the failure again and again
    assert runner.output().count("could not move bad.yaml") == 1

    rejected.unlink()
    rejected.mkdir()
    os.utime(bad, (time.time() + 1, time.time() + 1))  # the user touches it: looked at again now
    wait_for(lambda: (rejected / "bad.yaml").exists(), 30, "bad.yaml in rejected/")
    assert (rejected / ("bad.yaml" + ERROR_SUFFIX)).exists()
    assert not note.exists() and not bad.exists()
