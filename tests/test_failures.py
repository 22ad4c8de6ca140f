"""The failure classifier against the real messages PyTorch, CUDA, Gymnasium, ale-py, NumPy and SB3
print.

The corpus in tests/data/error_corpus/ holds one message per file. Each file starts with
``# expect: CODE`` (or ``none``), optionally ``# exc_type: NAME``, and ``# source:`` lines saying
where the text came from: produced live by the packages installed here, or, for the CUDA messages a
GPU-less machine cannot produce, assembled from the library source that prints them.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from machine.cuda import PYTORCH_CUDA_WHEELS, parse_cuda_version, pytorch_index_url
from machine.failures import CODES, Diagnosis, diagnose, explain
from runstore.models import RunRecord, TrainStatus

CORPUS = Path(__file__).parent / "data" / "error_corpus"
SIGNAL_CODES = {"killed", "native_crash", "unexpected_error"}


def load_corpus_file(path: Path) -> tuple[dict[str, str], str]:
    """Split a corpus file into its ``# key: value`` header and the error text below it."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    meta: dict[str, str] = {}
    i = 0
    while i < len(lines) and lines[i].startswith("# "):
        key, _, value = lines[i][2:].partition(":")
        key = key.strip()
        meta[key] = f"{meta[key]} {value.strip()}" if key in meta else value.strip()
        i += 1
    return meta, "".join(lines[i:])


CORPUS_FILES = sorted(CORPUS.glob("*.txt"))


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.stem for p in CORPUS_FILES])
def test_corpus_message_gets_expected_code(path: Path) -> None:
    meta, text = load_corpus_file(path)
    assert meta.get("source"), f"{path.name} must say where its text came from"
    assert text.strip(), f"{path.name} has no error text"
    found = diagnose(text, meta.get("exc_type"))
    got = found.code if found else "none"
    assert got == meta["expect"], f"{path.name}: expected {meta['expect']}, got {got}"
    if found is not None:
        assert found.evidence, "a diagnosis must show the line it was based on"


def test_corpus_covers_every_text_rule() -> None:
    expected = {load_corpus_file(p)[0]["expect"] for p in CORPUS_FILES}
    missing = set(CODES) - SIGNAL_CODES - expected
    assert not missing, f"no real message in the corpus for: {sorted(missing)}"
    assert "none" in expected, "the corpus needs negative examples too"


def test_every_diagnosis_is_actionable_and_serialisable() -> None:
    for path in CORPUS_FILES:
        meta, text = load_corpus_file(path)
        found = explain(text, meta.get("exc_type"))
        assert found.severity in {"error", "warning"}
        assert found.title and found.meaning and found.steps
        assert all(isinstance(step, str) and step for step in found.steps)
        assert Diagnosis.model_validate_json(found.model_dump_json()) == found


def test_a_diagnosis_of_the_old_shape_still_loads() -> None:
    """run.json and status.json written before the typed model held a plain dict; one with
    fewer keys gets the defaults, one with the wrong types is a damaged document."""
    old = {"code": "cuda_oom", "title": "The GPU ran out of memory", "steps": ["Halve it."]}
    record = RunRecord.model_validate({"id": "r", "name": "r", "diagnosis": old})
    assert record.diagnosis == Diagnosis(
        code="cuda_oom", title="The GPU ran out of memory", steps=("Halve it.",)
    )
    status = TrainStatus.model_validate({"diagnosis": {"title": "only a title"}})
    assert status.diagnosis is not None and status.diagnosis.code == "unexpected_error"
    with pytest.raises(ValueError):
        TrainStatus.model_validate({"diagnosis": {"steps": "not a list"}})


@pytest.mark.parametrize(
    ("exc_type", "code"),
    [
        ("OutOfMemoryError", "cuda_oom"),
        ("torch.OutOfMemoryError", "cuda_oom"),
        ("torch.cuda.OutOfMemoryError", "cuda_oom"),
        ("MemoryError", "host_oom"),
        ("FloatingPointError", "nan_or_inf"),
        ("NameNotFound", "env_not_found"),
        ("gymnasium.error.VersionNotFound", "env_not_found"),
        ("DistBackendError", "nccl_error"),
        ("AcceleratorError", "cuda_error"),
    ],
)
def test_exception_type_alone_is_enough(exc_type: str, code: str) -> None:
    found = diagnose("", exc_type)
    assert found is not None and found.code == code


def test_generic_exception_type_defers_to_specific_text() -> None:
    """torch.AcceleratorError covers every CUDA error; the text says which one."""
    text = "torch.AcceleratorError: CUDA error: an illegal memory access was encountered"
    assert diagnose(text, "AcceleratorError").code == "cuda_illegal_memory_access"
    ale = "gymnasium.error.NamespaceNotFound: Namespace ALE not found. Have you installed ..."
    assert diagnose(ale, "NamespaceNotFound").code == "ale_not_registered"
    typo = "gymnasium.error.NamespaceNotFound: Namespace ALEE not found. Did you mean: `ALE`?"
    assert diagnose(typo, "NamespaceNotFound").code == "env_not_found"


def test_specific_exception_type_beats_earlier_warnings_in_the_log() -> None:
    log = (
        "UserWarning: CUDA initialization: The NVIDIA driver on your system is too old "
        "(found version 12080).\n"
        "numpy._core._exceptions._ArrayMemoryError: Unable to allocate 26.3 GiB for an array"
    )
    assert diagnose(log, "_ArrayMemoryError").code == "host_oom"


def test_driver_too_old_names_the_matching_wheel() -> None:
    found = diagnose("The NVIDIA driver on your system is too old (found version 12080).")
    assert found.code == "cuda_driver_too_old"
    assert (
        "pip uninstall -y torch && pip install torch --index-url "
        "https://download.pytorch.org/whl/cu128" in found.steps[0]
    )
    ancient = diagnose("The NVIDIA driver on your system is too old (found version 11020).")
    assert "update the NVIDIA driver" in ancient.steps[0]


def test_kernel_image_relays_torchs_own_suggestion() -> None:
    meta, text = load_corpus_file(CORPUS / "cuda_no_kernel_image__torch_capability_warning.txt")
    found = diagnose(text)
    assert found.code == "cuda_no_kernel_image"
    assert any("pip install torch==" in s and "/whl/cu129" in s for s in found.steps)
    assert any("sm_120" in s for s in found.steps)
    old = diagnose(
        "NVIDIA GeForce GTX 1060 with CUDA capability sm_61 is not compatible with the "
        "current PyTorch installation."
    )
    assert any("sm_61" in s and "sm_60" in s for s in old.steps)


def test_env_typo_shows_gymnasiums_suggestion() -> None:
    text = (
        "gymnasium.error.NameNotFound: Environment `Pongg` doesn't exist in namespace ALE. "
        "Did you mean: `Pong`?"
    )
    found = diagnose(text, "NameNotFound")
    assert found.steps[0].startswith("Gymnasium suggests `Pong`")
    assert any("gymnasium" in s and "registry" in s for s in found.steps)


def test_disk_full_on_shared_memory_mentions_shm_size() -> None:
    found = diagnose("OSError: [Errno 28] No space left on device: '/dev/shm/torch_123'")
    assert found.code == "disk_full"
    assert "--shm-size" in found.steps[0]


GIB = 2**30


def test_sigkill_with_high_rss_is_host_oom() -> None:
    found = diagnose("", exit_signal=9, rss_bytes=14 * GIB, mem_total_bytes=16 * GIB)
    assert found.code == "host_oom"
    assert "14.0 GiB" in found.evidence and "16.0 GiB" in found.evidence
    # Popen reports death by signal as a negative return code; accept it as is.
    negative = diagnose("", exit_signal=-9, rss_bytes=14 * GIB, mem_total_bytes=16 * GIB)
    assert negative.code == "host_oom"
    # The kill is the stronger evidence than an older message in the log.
    log = "UserWarning: CUDA initialization: Found no NVIDIA driver on your system."
    assert diagnose(log, exit_signal=9, rss_bytes=15 * GIB, mem_total_bytes=16 * GIB).code == (
        "host_oom"
    )


def test_sigkill_with_low_or_unknown_rss_is_a_calm_warning() -> None:
    low = diagnose("", exit_signal=signal.SIGKILL, rss_bytes=1 * GIB, mem_total_bytes=16 * GIB)
    assert low.code == "killed" and low.severity == "warning"
    assert any("dmesg" in s for s in low.steps)
    assert diagnose("", exit_signal=9).code == "killed"


def test_native_crash_signals() -> None:
    found = diagnose("", exit_signal=signal.SIGSEGV)
    assert found.code == "native_crash"
    assert "SIGSEGV" in found.title
    assert diagnose("", exit_signal=signal.SIGTERM) is None


def test_explain_always_answers_and_points_at_logs() -> None:
    found = explain("Traceback (most recent call last):\n  ...\nKeyError: 'policy'", "KeyError")
    assert found.code == "unexpected_error"
    assert found.title == "Training raised KeyError"
    assert "KeyError: 'policy'" in found.meaning
    assert any("logs/" in s for s in found.steps)
    by_signal = explain("", exit_signal=signal.SIGTERM)
    assert by_signal.title == "Training process ended by signal SIGTERM"
    assert explain("").title == "Training stopped with an error"
    # explain() returns the specific diagnosis when there is one.
    assert explain("RuntimeError: No CUDA GPUs are available").code == "cuda_unavailable"


def test_nothing_matched_is_none() -> None:
    assert diagnose("") is None
    assert diagnose("ValueError: n_steps must be positive", "ValueError") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.8", (12, 8)),
        ("12.4.1", (12, 4)),
        (12080, (12, 8)),
        ("13020", (13, 2)),
        (11080, (11, 8)),
        (None, None),
        ("", None),
        (0, None),
        ("n/a", None),
        ((12, 6), (12, 6)),
    ],
)
def test_parse_cuda_version(value: object, expected: tuple[int, int] | None) -> None:
    assert parse_cuda_version(value) == expected


@pytest.mark.parametrize(
    ("driver_cuda", "suffix"),
    [("12.4", "cu124"), ("12.5", "cu124"), ("13.2", "cu132"), ("14.0", "cu132"), (12090, "cu129")],
)
def test_pytorch_index_url_picks_newest_build_the_driver_runs(
    driver_cuda: object, suffix: str
) -> None:
    assert pytorch_index_url(driver_cuda) == f"https://download.pytorch.org/whl/{suffix}"


def test_pytorch_index_url_for_a_too_old_driver_is_none() -> None:
    assert pytorch_index_url("11.2") is None
    assert pytorch_index_url(None) is None


def test_wheel_list_knows_every_cuda_release_of_the_installed_torch() -> None:
    """PYTORCH_CUDA_WHEELS is hand-kept because machine/cuda.py must not import torch; hold it
    against the table torch itself ships (torch/cuda/__init__.py, torch >= 2.9)."""
    torch_cuda = pytest.importorskip("torch.cuda")
    releases = getattr(torch_cuda, "PYTORCH_RELEASES_CODE_CC", None)
    if releases is None:
        pytest.skip("this torch has no PYTORCH_RELEASES_CODE_CC table")
    ours = {f"{major}.{minor}" for major, minor in PYTORCH_CUDA_WHEELS}
    assert set(releases) <= ours


def test_codes_are_unique() -> None:
    assert len(CODES) == len(set(CODES))


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(
    text=st.text(max_size=2000),
    exc_type=st.none() | st.text(max_size=40),
    exit_signal=st.none() | st.integers(-64, 64),
    rss=st.none() | st.integers(0, 2**40),
    total=st.none() | st.integers(0, 2**40),
)
def test_explain_never_raises(
    text: str, exc_type: str | None, exit_signal: int | None, rss: int | None, total: int | None
) -> None:
    found = explain(text, exc_type, exit_signal=exit_signal, rss_bytes=rss, mem_total_bytes=total)
    assert found.code in CODES
    json.loads(found.model_dump_json())
