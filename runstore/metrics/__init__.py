"""Scalar metrics of a run, read straight from its TensorBoard event files.

Why not TensorBoard's own ``EventAccumulator``: it decodes every record into Python objects
(15-20 µs a record on our 2-core box, ``bench/bench_metrics.py``), keeps them as Python objects,
and stops silently at the first damaged record. The dashboard polls live runs every few
seconds and compares many runs at once, so this module:

* parses the TFRecord framing itself, checks both CRCs of every record and decodes the common
  record shape (one ``simple_value`` per event, as SB3, CleanRL and ``torch.utils.tensorboard``
  write it) in a loop compiled by numba (``runstore.tfrecord``), and hands anything else
  (tensor scalars of TF2/new-style writers, ``SessionLog`` events, text, histograms) to
  protobuf;
* remembers per event file how far it has read (byte offset, inode, size, the bytes just
  before the offset), so a poll reads only the appended bytes and an unchanged run costs a
  directory walk and a few ``stat`` calls;
* splices rows appended to a run's newest file into the run's frame (zero-copy slices plus
  the new rows) instead of merging the whole run again, so a poll costs what was appended;
* keeps a Parquet copy of what it parsed beside each event file over 512 KiB, written by a
  background thread, so a fresh process (a new dashboard session, the CLI) starts fast too.
  The event file stays the source of truth: a cache that is stale, foreign or unreadable is
  ignored and rebuilt;
* tolerates writers: a record cut short by a writer mid-append is left for the next call
  (and is damage once the file has stopped growing: the file was cut), a
  record with a bad CRC is skipped and reported (never fatal), and damage at the very end of a
  file that nothing valid follows yet is "pending" (a write may be in flight: a bad last
  record is read again, damaged bytes are scanned on from where the scan stopped) until the
  file has stopped growing, that is its mtime is ``filestate.SETTLED_SECONDS`` (30 s) old;
  then it is reported as damage (``CorruptRegion.pending`` False);
* never opens an entry named like an event file that is a link, a FIFO or a device (a FIFO
  blocks, ``/dev/urandom`` never ends): it is reported unread (``CorruptRegion.refused``);
* is bounded whatever a file holds: a length header over ``tfrecord.MAX_RECORD_BYTES``
  (16 MiB) is damage, not a record to wait for; files are read in blocks of 32 MiB, and what
  is kept between blocks is at most one record, so one file's read holds at most about
  96 MiB of its bytes (two blocks and two records), plus index arrays for one block's records
  and the rows decoded from it. Damage is
  scanned block by block, zero runs a page at a time and a sparse file's holes skipped with
  ``SEEK_DATA``: ``truncate -s 1G`` on an event file loads in well under a second;
* holds no lock that other runs' loads wait for across a parse (``load``): each load holds
  its run folder's lock and its files' locks, and the process-wide lock only for bookkeeping.

The package, one module a job: ``protobuf`` (records the compiled path does not take),
``filestate`` (per event file: how far it was read, the rows so far, damage), ``cache`` (the
Parquet copies, and their switches ``PERSIST_CACHE`` and ``PERSIST_MIN_BYTES``), ``merge``
(one timeline from a run's files, the splice of appended rows), ``load`` (finding event
files, what the process remembers and its bound, the public calls), ``episodes`` (finished
episodes from our tags or SB3 Monitor files). Callers import from here.

Several event files in one run folder (a resumed run) form one timeline, ordered by the
wall time of each file's first event, then by name. Data written by an earlier file is
superseded by a later one: explicitly by ``SessionLog.START`` at step S (everything earlier
with step >= S goes, as TensorBoard purges it), and implicitly per tag (a later file that
logs tag T from step S on replaces the earlier file's T at steps >= S, which also removes the
zig-zag when the resumed process logs at different steps than the crashed one did). Then one
value is kept per (tag, step): the last one written. Every event file found under the folder
belongs to that one timeline, so point it at one run, not at a folder holding several.
"""

from __future__ import annotations

from runstore import tags
from runstore.metrics.cache import wait_for_cache_writes
from runstore.metrics.episodes import EPISODES_SCHEMA
from runstore.metrics.filestate import settled
from runstore.metrics.frame import SCALARS_SCHEMA
from runstore.metrics.load import (
    CorruptRegion,
    LoadReport,
    clear_cache,
    load_episodes,
    load_scalars,
    load_scalars_with_report,
)

#: The episode tags, under the names this module always exported (defined in runstore.tags).
EPISODE_RETURN_TAG = tags.EPISODE_RETURN
EPISODE_LENGTH_TAG = tags.EPISODE_LENGTH

__all__ = [
    "EPISODES_SCHEMA",
    "EPISODE_LENGTH_TAG",
    "EPISODE_RETURN_TAG",
    "SCALARS_SCHEMA",
    "CorruptRegion",
    "LoadReport",
    "clear_cache",
    "load_episodes",
    "load_scalars",
    "load_scalars_with_report",
    "settled",
    "wait_for_cache_writes",
]
