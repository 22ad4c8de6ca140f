"""Benchmark: runstore.metrics.load_scalars against TensorBoard's EventAccumulator.

    python bench/bench_metrics.py                      # ~1 minute: 20 runs x 10 tags x 5,000
    python bench/bench_metrics.py --runs 100 --steps 10000     # the issue's full size
    python bench/bench_metrics.py --real-dir runs       # real files: every run under ./runs

Generates runs of event files shaped like SB3's (one scalar per record, a file-version record
first, plus per-episode ``episode/return`` and ``episode/length``), then measures, each side in
its own fresh process so peak RSS is its own:

* cold load: nothing cached, no Parquet cache on disk (ours writes the cache during it);
* fresh process: the Parquet cache where one was written (files over 512 KiB; ours only);
* warm reload with nothing changed;
* reload after 0.1%, then 1%, then 10% more events were appended to every event file (the
  cost should follow the appended bytes, not the file's size);
* peak RSS.

EventAccumulator is slow (about 16 µs a record), so by default it runs on the first
``--ea-runs`` runs only; the side-by-side ratio compares both readers on those same files.

Then the same measures on real event files: by default a short real training (CartPole PPO,
``--real-steps``, through ``python -m training`` on a run folder made with runstore) whose run
folder is copied ``--real-copies`` times; with ``--real-dir`` every run folder under that
folder with event files (copied first, so the originals are never appended to). There an
append is the last events of each file written again at later steps.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TAGS = (
    "rollout/ep_rew_mean",
    "rollout/ep_len_mean",
    "time/fps",
    "train/approx_kl",
    "train/clip_fraction",
    "train/entropy_loss",
    "train/explained_variance",
    "train/learning_rate",
    "train/loss",
    "train/value_loss",
)
STEP_SIZE = 128  # global steps between two logged points
GENERATED_MARK = "generated"  # file in a generated run folder (real ones are appended to alike)
EPISODE_EVERY = 10  # one finished episode per this many logged points


# --- event file generation (vectorised; the writer itself is not what is measured) ----------


def _varint(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Protobuf varints of non-negative int64s: (bytes as an (n, 10) matrix, lengths)."""
    v = values.astype(np.uint64)
    out = np.zeros((len(v), 10), dtype=np.uint8)
    lengths = np.ones(len(v), dtype=np.int64)
    for i in range(10):
        low = (v & np.uint64(0x7F)).astype(np.uint8)
        v = v >> np.uint64(7)
        more = v > 0
        out[:, i] = low | np.where(more, 0x80, 0).astype(np.uint8)
        lengths += more
        if not more.any():
            break
    return out, lengths


def encode_scalars(
    tags: list[str], tag_idx: np.ndarray, steps: np.ndarray, walls: np.ndarray, values: np.ndarray
) -> bytes:
    """TFRecords of ``Event{wall_time, step, summary{value{tag, simple_value}}}``."""
    from runstore.tfrecord import masked_crc32c_many

    n = len(steps)
    raw_tags = [t.encode() for t in tags]
    tag_len = np.array([len(t) for t in raw_tags], dtype=np.int64)[tag_idx]
    vint, vlen = _varint(steps)
    has_step = steps != 0
    step_bytes = np.where(has_step, 1 + vlen, 0)
    data_len = 9 + step_bytes + 6 + tag_len + 5
    total = data_len + 16
    start = np.concatenate([[0], np.cumsum(total)[:-1]])
    buf = np.zeros(int(total.sum()), dtype=np.uint8)
    hdr = data_len.astype("<u8").view(np.uint8).reshape(n, 8)
    for k in range(8):
        buf[start + k] = hdr[:, k]
    d = start + 12
    buf[d] = 0x09
    wall_b = walls.astype("<f8").view(np.uint8).reshape(n, 8)
    for k in range(8):
        buf[d + 1 + k] = wall_b[:, k]
    buf[d + 9] = np.where(has_step, 0x10, buf[d + 9])
    for k in range(10):
        sel = has_step & (k < vlen)
        buf[(d + 10 + k)[sel]] = vint[sel, k]
    q = d + 9 + step_bytes
    buf[q] = 0x2A
    buf[q + 1] = (tag_len + 9).astype(np.uint8)
    buf[q + 2] = 0x0A
    buf[q + 3] = (tag_len + 7).astype(np.uint8)
    buf[q + 4] = 0x0A
    buf[q + 5] = tag_len.astype(np.uint8)
    for t, raw in enumerate(raw_tags):
        rows = np.flatnonzero(tag_idx == t)
        cols = np.frombuffer(raw, dtype=np.uint8)
        buf[(q[rows] + 6)[:, None] + np.arange(len(raw))[None, :]] = cols[None, :]
    v = q + 6 + tag_len
    buf[v] = 0x15
    val_b = values.astype("<f4").view(np.uint8).reshape(n, 4)
    for k in range(4):
        buf[v + 1 + k] = val_b[:, k]
    hcrc = masked_crc32c_many(buf, start, np.full(n, 8, dtype=np.int64))
    dcrc = masked_crc32c_many(buf, d, data_len)
    hb = hcrc.astype("<u4").view(np.uint8).reshape(n, 4)
    db = dcrc.astype("<u4").view(np.uint8).reshape(n, 4)
    for k in range(4):
        buf[start + 8 + k] = hb[:, k]
        buf[d + data_len + k] = db[:, k]
    return buf.tobytes()


def file_version_record(wall: float) -> bytes:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    data = Event(wall_time=wall, file_version="brain.Event:2").SerializeToString()
    header = len(data).to_bytes(8, "little")
    return (
        header
        + masked_crc32c(header).to_bytes(4, "little")
        + data
        + masked_crc32c(data).to_bytes(4, "little")
    )


def points(first: int, count: int, t0: float, rng: np.random.Generator) -> bytes:
    """Records for logged points first..first+count-1: every tag, and an episode every 10th."""
    idx = np.arange(first, first + count)
    steps = np.repeat(idx * STEP_SIZE, len(TAGS))
    tag_idx = np.tile(np.arange(len(TAGS)), count)
    ep = idx[idx % EPISODE_EVERY == 0]
    ep_steps = np.repeat(ep * STEP_SIZE + 1, 2)
    ep_tag = np.tile([len(TAGS), len(TAGS) + 1], len(ep))
    steps = np.concatenate([steps, ep_steps])
    tag_idx = np.concatenate([tag_idx, ep_tag])
    order = np.argsort(steps, kind="stable")
    steps, tag_idx = steps[order], tag_idx[order]
    walls = t0 + steps / 5000.0
    values = rng.standard_normal(len(steps)).astype(np.float32)
    from runstore import tags

    names = [*TAGS, tags.EPISODE_RETURN, tags.EPISODE_LENGTH]
    return encode_scalars(names, tag_idx, steps, walls, values)


def generate(root: Path, runs: int, steps: int) -> tuple[int, int]:
    rng = np.random.default_rng(0)
    total_bytes = 0
    for r in range(runs):
        folder = root / f"run{r:04d}" / "tb" / "PPO_1"
        folder.mkdir(parents=True)
        (root / f"run{r:04d}" / GENERATED_MARK).touch()
        t0 = 1.7e9 + r * 1000
        data = file_version_record(t0) + points(0, steps, t0, rng)
        (folder / f"events.out.tfevents.{int(t0)}.bench.{r}.0").write_bytes(data)
        total_bytes += len(data)
    records = runs * (steps * len(TAGS) + 2 * len(range(0, steps, EPISODE_EVERY)) + 1)
    return records, total_bytes


def event_files(run: Path) -> list[Path]:
    return sorted(p for p in run.rglob("*") if "tfevents" in p.name and p.is_file())


#: Appends measured one after the other, as a share of what the files held at first.
APPEND_SHARES = (0.001, 0.01, 0.1)


def append_share(run: Path, steps: int, share: float, done: float) -> None:
    """Append ``share`` more events (``done`` already appended) to every event file."""
    if not (run / GENERATED_MARK).exists():
        append_real_tail(run, share / (1 + done))
        return
    extra = max(1, round(steps * share))
    (path,) = event_files(run)
    rng = np.random.default_rng(1)
    with path.open("ab") as fh:
        fh.write(points(round(steps * (1 + done)), extra, 1.7e9, rng))


def measure_appends(runs: list[Path], steps: int, reload: Any) -> dict[str, float]:
    """Seconds per run of ``reload(run)`` after each share in ``APPEND_SHARES`` was appended."""
    out: dict[str, float] = {}
    done = 0.0
    for share in APPEND_SHARES:
        for run in runs:
            append_share(run, steps, share, done)
        done += share
        t = time.perf_counter()
        for run in runs:
            reload(run)
        out[f"append_{share}_per_run_s"] = (time.perf_counter() - t) / len(runs)
    return out


def append_real_tail(run: Path, share: float = 0.01) -> None:
    """Append the last ``share`` of each event file's scalar events again, at later steps."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    for path in event_files(run):
        events = [Event.FromString(r) for r in RawEventFileLoader(str(path)).Load()]
        events = [e for e in events if e.HasField("summary")]
        if not events:
            continue
        tail = events[-max(1, int(len(events) * share)) :]
        shift = max(e.step for e in events) + 1 - min(e.step for e in tail)
        out = bytearray()
        for e in tail:
            e.step += shift
            data = e.SerializeToString()
            header = len(data).to_bytes(8, "little")
            out += header + masked_crc32c(header).to_bytes(4, "little")
            out += data + masked_crc32c(data).to_bytes(4, "little")
        with path.open("ab") as fh:
            fh.write(bytes(out))


def run_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.name.startswith("run"))


def real_runs(dest: Path, args: argparse.Namespace) -> str:
    """Fill ``dest`` with run folders of real event files; returns where they came from."""
    dest.mkdir(parents=True)
    if args.real_dir is not None:
        sources = sorted({p.parent for p in args.real_dir.rglob("*tfevents*") if p.is_file()})
        runs: dict[Path, Path] = {}
        for folder in sources:  # group event folders by run (the folder above tb/)
            top = folder.parent.parent if folder.parent.name == "tb" else folder
            runs.setdefault(top, top)
        for i, top in enumerate(sorted(runs)):
            for f in event_files(top):
                target = dest / f"run{i:04d}" / f.relative_to(top)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, target)
        return f"{len(runs)} run folders under {args.real_dir}"
    from runstore import RunStore, parse_config

    store = RunStore(dest.parent / "trained")
    store.ensure_layout()
    text = (
        "algo: ppo\nenv: CartPole-v1\nseed: 1\n"
        f"n_timesteps: {args.real_steps}\ncheckpoint_every: {args.real_steps}\n"
        "hyperparams:\n  n_envs: 8\n  n_steps: 32\n  batch_size: 256\n  n_epochs: 2\n"
    )
    queued = store.submit(text, "bench.yaml")
    record = store.accept(queued, parse_config(queued.read_bytes()))
    assert record is not None
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "training", str(store.paths(record.id).dir)],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    took = time.perf_counter() - t
    for i in range(args.real_copies):
        shutil.copytree(store.paths(record.id).tb, dest / f"run{i:04d}" / "tb")
    return (
        f"a real {args.real_steps:,}-step CartPole PPO training ({took:.0f} s), "
        f"copied {args.real_copies}x"
    )


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- the two sides, each in its own process -------------------------------------------------


def phase_ours(root: Path, steps: int) -> dict[str, float]:
    from runstore import metrics

    warm_up = root.parent / "warmup"  # pay imports and first-call costs outside the timing
    if warm_up.exists():
        metrics.load_scalars(warm_up)
        metrics.clear_cache()
    runs = run_dirs(root)
    base_rss = rss_mb()
    out: dict[str, float] = {}
    per_run = []
    rows = 0
    t_all = time.perf_counter()
    for run in runs:
        t = time.perf_counter()
        rows += metrics.load_scalars(run).height
        per_run.append(time.perf_counter() - t)
    out["cold_total_s"] = time.perf_counter() - t_all
    out["cold_per_run_s"] = out["cold_total_s"] / len(runs)
    out["cold_per_run_list"] = per_run  # type: ignore[assignment]
    out["rows"] = rows

    t = time.perf_counter()
    episodes = sum(metrics.load_episodes(run).height for run in runs)
    out["episodes_per_run_s"] = (time.perf_counter() - t) / len(runs)
    out["episodes"] = episodes

    metrics.clear_cache()
    t = time.perf_counter()
    for run in runs:
        metrics.load_scalars(run)
    out["parquet_per_run_s"] = (time.perf_counter() - t) / len(runs)

    t = time.perf_counter()
    for run in runs:
        metrics.load_scalars(run)
    out["warm_per_run_s"] = (time.perf_counter() - t) / len(runs)

    out |= measure_appends(runs, steps, metrics.load_scalars)
    out["peak_rss_mb"] = rss_mb()
    out["base_rss_mb"] = base_rss
    return out


def phase_ea(root: Path, ea_runs: int, steps: int) -> dict[str, float]:
    from tensorboard.backend.event_processing import event_accumulator as ea

    runs = run_dirs(root)[:ea_runs]
    base_rss = rss_mb()
    accs = []
    per_run = []
    rows = 0
    for run in runs:
        t = time.perf_counter()
        (folder,) = {p.parent for p in event_files(run)}
        acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
        acc.Reload()
        rows += sum(len(acc.Scalars(tag)) for tag in acc.Tags()["scalars"])
        per_run.append(time.perf_counter() - t)
        accs.append(acc)
    out: dict[str, float] = {"cold_per_run_list": per_run, "rows": rows}  # type: ignore[dict-item]
    out["cold_per_run_s"] = sum(per_run) / len(runs)
    t = time.perf_counter()
    for acc in accs:
        acc.Reload()
    out["warm_per_run_s"] = (time.perf_counter() - t) / len(runs)
    by_run = dict(zip(runs, accs, strict=True))
    out |= measure_appends(runs, steps, lambda run: by_run[run].Reload())
    out["peak_rss_mb"] = rss_mb()
    out["base_rss_mb"] = base_rss
    return out


def child(phase: str, args: argparse.Namespace) -> dict[str, float]:
    cmd = [
        sys.executable,
        __file__,
        "--phase",
        phase,
        "--dir",
        str(args.dir),
        "--steps",
        str(args.steps),
        "--ea-runs",
        str(args.ea_runs),
        "--source",
        args.source,
    ]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:10.2f} ms"


def side_by_side(args: argparse.Namespace, source: str, k: int) -> None:
    """Both readers on ``args.dir / source`` (each in a fresh process), printed as a table."""
    args.source, args.ea_runs = source, k
    n_runs = len(run_dirs(args.dir / source))
    sizes = {p: p.stat().st_size for p in (args.dir / source).rglob("*tfevents*")}
    ea_res = child("ea", args)
    for path, original in sizes.items():  # undo EventAccumulator's appends
        os.truncate(path, original)
    ours = child("ours", args)

    ours_k = sum(ours["cold_per_run_list"][:k]) / k  # type: ignore[arg-type]
    ea_k = ea_res["cold_per_run_s"]
    rows_k = ea_res["rows"] / k
    print(f"\n{source + ':':44}{'load_scalars':>14}{'EventAccumulator':>18}{'ratio':>9}")
    print(
        f"{f'cold load, per run (same {k} runs)':44}{ms(ours_k)}{ms(ea_k):>18}{ea_k / ours_k:8.1f}x"
    )
    print(f"{'  records/s':44}{rows_k / ours_k / 1e6:11.2f} M{rows_k / ea_k / 1e6:15.2f} M")
    print(
        f"{f'cold load, all {n_runs} runs':44}{ours['cold_total_s']:11.2f} s"
        f"{'':>18}  ({ours['rows']:,} rows)"
    )
    warm_ratio = ea_res["warm_per_run_s"] / ours["warm_per_run_s"]
    print(f"{'fresh process (Parquet cache if >=512 KiB)':44}{ms(ours['parquet_per_run_s'])}")
    print(
        f"{'load_episodes after load_scalars, per run':44}{ms(ours['episodes_per_run_s'])}"
        f"{'':>18}  ({ours['episodes']:,} episodes)"
    )
    print(
        f"{'warm reload, nothing changed, per run':44}{ms(ours['warm_per_run_s'])}"
        f"{ms(ea_res['warm_per_run_s']):>18}{warm_ratio:8.1f}x"
    )
    for share in APPEND_SHARES:
        key = f"append_{share}_per_run_s"
        print(
            f"{f'reload after +{share:.1%} events, per run':44}{ms(ours[key])}"
            f"{ms(ea_res[key]):>18}{ea_res[key] / ours[key]:8.1f}x"
        )
    print(
        f"{'peak RSS':44}{ours['peak_rss_mb']:10.0f} MB{ea_res['peak_rss_mb']:15.0f} MB"
        f"   ({n_runs} vs {k} runs held)"
    )
    print(
        f"{'  per run held (peak - after imports)':44}"
        f"{(ours['peak_rss_mb'] - ours['base_rss_mb']) / n_runs:10.1f} MB"
        f"{(ea_res['peak_rss_mb'] - ea_res['base_rss_mb']) / k:15.1f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5_000, help="logged points per tag")
    parser.add_argument(
        "--ea-runs",
        type=int,
        default=10,
        help="runs EventAccumulator reads (it is slow); ratios use these runs",
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument(
        "--real-dir", type=Path, help="bench on the run folders under DIR instead of training"
    )
    parser.add_argument("--real-steps", type=int, default=30_000, help="CartPole steps to train")
    parser.add_argument("--real-copies", type=int, default=10, help="copies of the real run")
    parser.add_argument("--no-real", action="store_true", help="generated files only")
    parser.add_argument("--source", default="runs", help=argparse.SUPPRESS)
    parser.add_argument("--phase", choices=["ours", "ea"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        root = args.dir / args.source
        if args.phase == "ours":
            result = phase_ours(root, args.steps)
        else:
            result = phase_ea(root, args.ea_runs, args.steps)
        print(json.dumps(result))
        return

    args.dir = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    try:
        t = time.perf_counter()
        records, size = generate(args.dir / "runs", args.runs, args.steps)
        generate(args.dir / "warmup", 1, 200)  # over 1,000 rows: both ways of building a frame
        print(
            f"generated {args.runs} runs x {len(TAGS)} tags x {args.steps} steps + episodes: "
            f"{records:,} records, {size / 1e6:.0f} MB in {time.perf_counter() - t:.1f} s"
        )
        side_by_side(args, "runs", min(args.ea_runs, args.runs))
        if not args.no_real:
            origin = real_runs(args.dir / "real", args)
            n_real = len(run_dirs(args.dir / "real"))
            size = sum(p.stat().st_size for p in (args.dir / "real").rglob("*tfevents*"))
            print(f"\nreal event files: {origin}: {n_real} runs, {size / 1e6:.1f} MB")
            if n_real:
                side_by_side(args, "real", n_real)
        print(
            "\nEventAccumulator reloads: Reload() on the kept accumulators (reads new events "
            "only), not counting building a frame from them."
        )
    finally:
        if args.keep:
            print(f"files kept in {args.dir}")
        else:
            shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
