"""The clip server (dashboard/clip_server.py) against real HTTP: signed URLs stream a run's
clip from disk (Range included); anything else is refused without opening a file; a 1 GiB
clip goes through a server process whose peak RSS stays far below the clip's size; and the
page falls back to bytes, saying so, when the server cannot start."""

from __future__ import annotations

import contextlib
import http.client
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from dashboard import clip_server
from dashboard.clip_server import ClipServer
from runstore import safeio, trust

RUN = "20261125-021637-pong-ppo-5140a1b2"
CLIP = "step-000500000.mp4"
BODY = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4, every offset distinguishable
SECRET = b"the contents of a file outside the runs folder\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    videos = root / RUN / "videos"
    videos.mkdir(parents=True)
    (videos / CLIP).write_bytes(BODY)
    (videos / "step-000500000.json").write_text('{"step": 500000}')
    return root


@pytest.fixture
def server(root: Path) -> Iterator[ClipServer]:
    key = trust.folder_key(root)
    assert key is not None
    srv = ClipServer(root, key, "127.0.0.1", 0)
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every path the server opens through runstore.safeio."""
    calls: list[Path] = []
    real = safeio.open_file

    def spy(path: Path | str, **kwargs: object):  # type: ignore[no-untyped-def]
        calls.append(Path(path))
        return real(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(safeio, "open_file", spy)
    return calls


def fetch(
    server: ClipServer, target: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One raw request (http.client sends the target as given: no normalising of ``..``)."""
    if target.startswith("http"):
        parts = urlsplit(target)
        target = f"{parts.path}?{parts.query}"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, target, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_a_signed_url_streams_the_clip_and_ranges_get_206(server: ClipServer) -> None:
    url = server.url(RUN, CLIP, "127.0.0.1")
    assert url.startswith(f"http://127.0.0.1:{server.port}/clip/{RUN}/{CLIP}?exp=")
    status, headers, body = fetch(server, url)
    assert (status, body) == (200, BODY)
    assert headers["content-type"] == "video/mp4"
    assert headers["accept-ranges"] == "bytes"
    assert headers["content-length"] == str(len(BODY))

    status, headers, body = fetch(server, url, headers={"Range": "bytes=1000-1999"})
    assert (status, body) == (206, BODY[1000:2000])
    assert headers["content-range"] == f"bytes 1000-1999/{len(BODY)}"
    assert headers["content-length"] == "1000"
    # What a browser sends first, an open end, and a suffix.
    status, headers, body = fetch(server, url, headers={"Range": "bytes=0-"})
    assert (status, body) == (206, BODY)
    assert headers["content-range"] == f"bytes 0-{len(BODY) - 1}/{len(BODY)}"
    status, headers, body = fetch(server, url, headers={"Range": "bytes=-4"})
    assert (status, body, headers["content-range"]) == (
        206,
        b"tail",
        f"bytes {len(BODY) - 4}-{len(BODY) - 1}/{len(BODY)}",
    )
    # A last byte past the end is cut to the end.
    status, _, body = fetch(server, url, headers={"Range": f"bytes={len(BODY) - 2}-99999999"})
    assert (status, body) == (206, b"il")
    # HEAD: the headers, no body.
    status, headers, body = fetch(server, url, method="HEAD")
    assert (status, body, headers["content-length"]) == (200, b"", str(len(BODY)))
    # A download link: the same clip as an attachment named after the run and the clip.
    status, headers, body = fetch(server, f"{url}&dl=1")
    assert (status, body) == (200, BODY)
    assert headers["content-disposition"] == f'attachment; filename="{RUN}-{CLIP}"'
    assert "content-disposition" not in fetch(server, url, method="HEAD")[1]
    # A stable URL across reruns of a page (the same expiry within a step).
    assert server.url(RUN, CLIP, "127.0.0.1") == url


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("10.0.0.5", "10.0.0.5"),
        ("box.lan", "box.lan"),
        ("::1", "[::1]"),
        ("[fe80::1]", "[fe80::1]"),
        ("evil.com/x?", "localhost"),
        ("a:b", "localhost"),
        ("", "localhost"),
    ],
)
def test_the_url_names_the_host_the_browser_used(server: ClipServer, host: str, shown: str) -> None:
    assert server.url(RUN, CLIP, host).startswith(f"http://{shown}:{server.port}/clip/{RUN}/")


@pytest.mark.parametrize(
    "wanted",
    [
        f"bytes={len(BODY)}-",
        f"bytes={len(BODY) + 10}-{len(BODY) + 20}",
        "bytes=5-2",
        "bytes=-0",
        "bytes=abc",
        "bytes=0-1,5-6",
        "bytes=" + "9" * 5000 + "-",
        "lines=0-1",
    ],
)
def test_a_bad_range_gets_416(server: ClipServer, wanted: str) -> None:
    status, headers, _ = fetch(
        server, server.url(RUN, CLIP, "127.0.0.1"), headers={"Range": wanted}
    )
    assert status == 416
    assert headers["content-range"] == f"bytes */{len(BODY)}"


def test_unsigned_tampered_expired_and_foreign_urls_open_nothing(
    server: ClipServer, root: Path, opened: list[Path]
) -> None:
    url = server.url(RUN, CLIP, "127.0.0.1")
    path, query = urlsplit(url).path, urlsplit(url).query
    params = dict(p.split("=") for p in query.split("&"))
    exp, sig = int(params["exp"]), params["sig"]
    flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
    other_key = clip_server.url_key(b"x" * 32)
    past = int(time.time()) - 10
    refused = {
        "unsigned": (path, 403),
        "no expiry": (f"{path}?sig={sig}", 403),
        "tampered signature": (f"{path}?exp={exp}&sig={flipped}", 403),
        "later expiry, same signature": (f"{path}?exp={exp + 1}&sig={sig}", 403),
        "another clip, same signature": (
            f"/clip/{RUN}/step-000250000.mp4?exp={exp}&sig={sig}",
            403,
        ),
        "another key": (
            f"{path}?exp={exp}&sig={clip_server.signature(other_key, RUN, CLIP, exp)}",
            403,
        ),
        "expired, rightly signed": (
            f"{path}?exp={past}&sig={clip_server.signature(server._key, RUN, CLIP, past)}",
            403,
        ),
        "two signatures": (f"{path}?exp={exp}&sig={sig}&sig={sig}", 403),
        "unicode digits": (f"{path}?exp=%D9%A1&sig={sig}", 403),
        # Names that are no clip of a run, each rightly signed: refused all the same.
        "dot-dot": (f"/clip/{RUN}/../../../etc/passwd?exp={exp}&sig={sig}", 404),
        "encoded dot-dot": (f"/clip/{RUN}/..%2F..%2Fsecret.mp4?exp={exp}&sig={sig}", 404),
        "sidecar": (
            f"/clip/{RUN}/step-000500000.json?exp={exp}"
            f"&sig={clip_server.signature(server._key, RUN, 'step-000500000.json', exp)}",
            404,
        ),
        "the key file": (
            f"/clip/{RUN}/../.secret?exp={exp}"
            f"&sig={clip_server.signature(server._key, RUN, '../.secret', exp)}",
            404,
        ),
        "not a run id": (
            f"/clip/..%2F{RUN}/{CLIP}?exp={exp}"
            f"&sig={clip_server.signature(server._key, '../' + RUN, CLIP, exp)}",
            404,
        ),
        "another prefix": (f"/media/{RUN}/{CLIP}?exp={exp}&sig={sig}", 404),
    }
    got = {name: fetch(server, target)[0] for name, (target, _) in refused.items()}
    assert got == {name: status for name, (_, status) in refused.items()}
    assert opened == []
    # The signed URL itself is still served, through safeio.
    assert fetch(server, url)[0] == 200
    assert opened == [root / RUN / "videos" / CLIP]


def test_a_signed_url_to_a_link_a_fifo_or_a_device_is_refused_without_hanging(
    server: ClipServer, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(SECRET)
    videos = root / RUN / "videos"
    link = videos / "step-000000001.mp4"
    link.symlink_to(outside)
    fifo = videos / "step-000000002.mp4"
    os.mkfifo(fifo)
    (videos / "step-000000003.mp4").symlink_to("/dev/zero")
    device = videos / "step-000000004.mp4"
    if os.geteuid() == 0:  # a character device (/dev/zero's numbers)
        os.mknod(device, 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    else:
        device.symlink_to("/dev/null")
    (videos / "step-000000005.mp4").mkdir()
    # A run folder whose videos/ is a link out.
    other = "20261125-021637-pong-ppo-aaaabbbb"
    (root / other).mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / CLIP).write_bytes(SECRET)
    (root / other / "videos").symlink_to(tmp_path / "elsewhere")
    try:
        targets = [(RUN, f"step-00000000{i}.mp4") for i in range(1, 6)] + [(other, CLIP)]
        started = time.monotonic()
        for run_id, name in targets:
            status, _, body = fetch(server, server.url(run_id, name, "127.0.0.1"))
            assert status == 404, (run_id, name)
            assert SECRET not in body
        assert time.monotonic() - started < 5  # the FIFO was never opened for reading
    finally:  # a server thread stuck on the FIFO (a regression) is let go
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_idle_connections_cannot_pile_up(server: ClipServer) -> None:
    import socket

    server.httpd.slots = threading.BoundedSemaphore(2)  # type: ignore[attr-defined]
    url = server.url(RUN, CLIP, "127.0.0.1")
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
    try:
        time.sleep(0.3)  # both accepted, each a thread waiting for a request line
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            fetch(server, url)  # a third: closed at once, not queued
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 5
    while True:  # the idle threads end when their sockets close, freeing their slots
        try:
            assert fetch(server, url)[0] == 200
            break
        except (ConnectionError, http.client.HTTPException):
            assert time.monotonic() < deadline
            time.sleep(0.1)


# -- memory: a 1 GiB clip through a server process ------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from dashboard.clip_server import ClipServer
    from runstore import trust
    root = Path(sys.argv[1])
    srv = ClipServer(root, trust.folder_key(root), "127.0.0.1", 0)
    print(srv.url(sys.argv[2], sys.argv[3], "127.0.0.1"), flush=True)
    time.sleep(600)
    """
)


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.timeout(180)
def test_a_1_gib_clip_streams_in_bounded_memory(root: Path) -> None:
    size = 2**30
    big = root / RUN / "videos" / "timelapse.mp4"
    with open(big, "wb") as fh:  # sparse: costs no disk
        os.truncate(fh.fileno(), size)
        fh.seek(size - 4)
        fh.write(b"last")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), RUN, "timelapse.mp4"],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        url = urlsplit(child.stdout.readline().strip())
        before = _vm_hwm_kib(child.pid)
        conn = http.client.HTTPConnection("127.0.0.1", url.port, timeout=60)
        conn.request("GET", f"{url.path}?{url.query}")
        resp = conn.getresponse()
        assert resp.status == 200
        got, tail = 0, b""
        while chunk := resp.read(1 << 20):
            got += len(chunk)
            tail = (tail + chunk)[-4:]
        conn.close()
        peak = _vm_hwm_kib(child.pid)
    finally:
        child.kill()
        child.wait()
    assert (got, tail) == (size, b"last")
    print(
        f"clip server child: VmHWM {before / 1024:.0f} MiB before, "
        f"{peak / 1024:.0f} MiB after serving 1 GiB"
    )
    assert peak < 300 * 1024, f"peak RSS {peak / 1024:.0f} MiB serving a 1 GiB clip"
