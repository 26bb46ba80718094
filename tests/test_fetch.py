"""wordnet.data.fetch: the data folder, downloads and copies checked against pinned SHA-256."""
import http.server
import shutil
import socket
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from wordnet.cli import cli
from wordnet.data import fetch
from wordnet.data.dataset import has_data, sha256


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_pins_are_those_of_the_data_folder(data_dir):
    """Every file upstream publishes, and the rebuilt train_data.csv, is pinned, and
    the data folder written from the embedded copy matches the pins."""
    assert set(fetch.PINNED) == set(fetch.UPSTREAM) | {fetch.TRAIN_CSV}
    assert {name: sha256(data_dir / name) for name in fetch.PINNED} == fetch.PINNED


def test_the_data_folder_is_the_option_then_the_environment_then_data(monkeypatch):
    monkeypatch.delenv(fetch.DATA_ENV, raising=False)
    assert fetch.data_dir(None) == Path("data")
    monkeypatch.setenv(fetch.DATA_ENV, "/somewhere")
    assert fetch.data_dir(None) == Path("/somewhere")
    assert fetch.data_dir("mine") == Path("mine")


def test_has_data(data_dir, tmp_path):
    assert has_data(data_dir)
    assert not has_data(tmp_path)
    (tmp_path / "vocab.txt").symlink_to(data_dir / "vocab.txt")
    assert not has_data(tmp_path)
    (tmp_path / "raw_sentences.txt").symlink_to(data_dir / "raw_sentences.txt")
    assert has_data(tmp_path)


def test_copy_from_a_local_folder(data_dir, tmp_path):
    dest = tmp_path / "data"
    fetch.fetch(dest, source=data_dir)
    assert {p.name: sha256(p) for p in dest.iterdir()} == fetch.PINNED


def test_download_then_rebuild_the_training_split(upstream, tmp_path, monkeypatch):
    monkeypatch.setenv(fetch.URL_ENV, upstream)
    dest, messages = tmp_path / "data", []
    fetch.fetch(dest, log=messages.append)
    assert {p.name: sha256(p) for p in dest.iterdir()} == fetch.PINNED
    assert "rebuilding train_data.csv from raw_sentences.txt" in messages
    messages.clear()
    fetch.fetch(dest, log=messages.append)               # all present and verified: nothing to do
    assert messages == []


def test_a_checksum_mismatch_fails_and_leaves_the_users_file(data_dir, tmp_path):
    """The user's own vocab.txt in the data folder is neither deleted nor replaced by a
    source's copy that does not match its pin; nothing else is left behind."""
    source, dest = tmp_path / "source", tmp_path / "data"
    shutil.copytree(data_dir, source)
    (source / "vocab.txt").chmod(0o644)
    (source / "vocab.txt").write_text("not\nthe\nvocabulary\n")
    dest.mkdir()
    (dest / "vocab.txt").write_text("my own words\n")
    with pytest.raises(fetch.FetchError,
                       match=r"vocab.txt: SHA-256 .* does not match .*; .*vocab.txt left as it was"):
        fetch.fetch(dest, source=source)
    assert (dest / "vocab.txt").read_text() == "my own words\n"
    assert [p.name for p in dest.iterdir()] == ["vocab.txt"]
    with pytest.raises(fetch.FetchError, match="does not match .*; nothing written"):
        fetch.fetch(tmp_path / "empty", source=source)
    assert not (tmp_path / "empty").exists()                 # nothing fetched, no folder


def test_offline_fails_with_how_to_point_at_a_local_copy(tmp_path, monkeypatch):
    monkeypatch.setenv(fetch.URL_ENV, f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(fetch.FetchError) as info:
        fetch.fetch(tmp_path / "data")
    message = str(info.value)
    assert "cannot download" in message
    for hint in ("--data-dir", fetch.DATA_ENV, "data fetch --from"):
        assert hint in message
    assert list(tmp_path.iterdir()) == []                  # no empty data/ left behind


def test_offline_leaves_nothing_but_what_it_had(tmp_path, monkeypatch):
    """A mirror that refuses connections: the folders made for the data (data/ and
    those above it) are removed again; a folder that was there stays, as it was."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(fetch.URL_ENV, "http://127.0.0.1:9")
    with pytest.raises(fetch.FetchError, match="cannot download vocab.txt"):
        fetch.fetch(Path("new") / "deeper" / "data")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine\n")
    with pytest.raises(fetch.FetchError):
        fetch.fetch(tmp_path / "mine" / "data")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    with pytest.raises(fetch.FetchError):
        fetch.fetch(tmp_path / "mine")                      # the data folder itself: kept
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_a_download_cut_midway_keeps_the_files_fetched_whole(mirror, data_dir, tmp_path):
    """vocab.txt is served, the next file's connection is cut: the data folder holds
    vocab.txt, verified, and no half-written file."""
    def answer(handler):
        name = Path(handler.path).name
        if name == "vocab.txt":
            body = (data_dir / name).read_bytes()
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        else:                                               # promises more than it sends
            handler.send_response(200)
            handler.send_header("Content-Length", "100000")
            handler.end_headers()
            handler.wfile.write(b"x" * 1000)
            handler.close_connection = True
    url, server = mirror
    server.answer = answer
    with pytest.raises(fetch.FetchError, match="vocab_ordered.txt"):
        fetch.fetch(tmp_path / "data", base_url=url)
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["vocab.txt"]
    assert sha256(tmp_path / "data" / "vocab.txt") == fetch.PINNED["vocab.txt"]


def test_cli_data_fetch(data_dir, tmp_path, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(cli, ["data", "fetch", "--from", str(data_dir),
                                 "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == sorted(fetch.PINNED)

    monkeypatch.setenv(fetch.URL_ENV, f"http://127.0.0.1:{closed_port()}")
    result = runner.invoke(cli, ["data", "fetch", "--data-dir", str(tmp_path / "e")])
    assert result.exit_code == 1
    *progress, error = result.stderr.strip().splitlines()
    assert error.startswith("Error: cannot download") and "--from DIR" in error
    assert progress == ["downloading vocab.txt"]
    assert not (tmp_path / "e").exists()


# -- issue 21 item 6: sources and downloads bounded -----------------------------------

def test_a_fifo_as_a_source_is_refused_unread(data_dir, tmp_path):
    """A FIFO as a `data fetch --from` source hung."""
    import os

    from blocking import unblocking, within
    source = tmp_path / "source"
    shutil.copytree(data_dir, source)
    (source / "vocab.txt").unlink()
    os.mkfifo(source / "vocab.txt")
    try:
        e = within(5, lambda: fetch.fetch(tmp_path / "dest", source))
    finally:
        unblocking(source / "vocab.txt")
    assert isinstance(e, fetch.FetchError)
    assert str(e) == f"{source / 'vocab.txt'}: not a regular file: not a vocab.txt"
    assert not (tmp_path / "dest" / "vocab.txt").exists()


@pytest.fixture
def mirror():
    """A loopback server answering every GET as ``mirror.answer(handler)`` says; yields
    (URL, the server)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            server.answer(self)

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()


def test_a_mirror_announcing_more_than_the_file_can_hold_is_refused(mirror, tmp_path):
    """A mirror announcing Content-Length: 4e9 was read until MemoryError."""
    import time


    def answer(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "4000000000")
        handler.end_headers()
        try:
            handler.wfile.write(b"x" * 1000)
        except OSError:
            pass
    url, server = mirror
    server.answer = answer
    started = time.monotonic()
    with pytest.raises(fetch.FetchError) as e:
        fetch.fetch(tmp_path / "dest", base_url=url)
    assert time.monotonic() - started < 5
    assert "it announces 4000000000 bytes, more than vocab.txt can hold" in str(e.value)
    assert not (tmp_path / "dest" / "vocab.txt").exists()


def test_a_download_is_stopped_past_its_bound(mirror, tmp_path, monkeypatch):
    """No Content-Length, and more bytes than the file can hold: reading stops there."""

    sent = []

    def answer(handler):
        handler.send_response(200)
        handler.end_headers()                   # no length: until the connection closes
        try:
            for _ in range(10_000):
                handler.wfile.write(b"x" * 65536)
                sent.append(1)
        except OSError:
            pass
    url, server = mirror
    server.answer = answer
    monkeypatch.setitem(fetch.LIMITS, "vocab.txt", 100_000)
    with pytest.raises(fetch.FetchError, match="more than 100,000 bytes"):
        fetch.fetch(tmp_path / "dest", base_url=url)
    assert len(sent) < 10_000
