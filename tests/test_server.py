"""wordnet.serving.server: `wordnet-pipeline serve`, MLflow's request format with its guards before
the body is parsed (415, 411, 413 unread, 400 for deep nesting, 408, 503), the model's own
limits behind them, bounded memory, and a clean stop.  Its answers compared with `mlflow
models serve`'s, byte for byte: tests/test_serving.py."""
import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from wordnet.cli import cli
from wordnet.serving import server

BIN = Path(sys.executable).parent
JSON = "application/json"
GOOD = b'{"inputs": ["have a good"], "params": {"top_k": 3}}'


@pytest.fixture(scope="module")
def ours(data_dir, servers, tmp_path_factory):
    """`wordnet-pipeline serve` of model9-3000.bin on a free port; yields (host, port, pid)."""
    folder = tmp_path_factory.mktemp("server")
    port = servers.free_port()
    with servers.start([str(BIN / "wordnet-pipeline"), "serve", "-m",
                        str(data_dir / "model9-3000.bin"), "--port", str(port)],
                       f"http://127.0.0.1:{port}/ping", folder / "serve.log") as process:
        yield "127.0.0.1", port, process.pid
        assert process.poll() is None, (folder / "serve.log").read_text()[-3000:]


def exchange(address, raw: bytes, timeout: float = 30) -> tuple[int, dict | str]:
    """Send ``raw`` bytes (a whole request, or its start) and read the answer:
    (status, its JSON or its text)."""
    with socket.create_connection(address[:2], timeout=timeout) as s:
        s.sendall(raw)
        response = http.client.HTTPResponse(s)
        response.begin()
        text = response.read().decode()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text


def post(address, body: bytes, content_type: str | None = JSON, path: str = "/invocations",
         extra: str = "") -> tuple[int, dict]:
    headers = f"Content-Type: {content_type}\r\n" if content_type else ""
    return exchange(address, f"POST {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: "
                    f"{len(body)}\r\n{extra}\r\n".encode() + body)


def rss(pid: int, field: str = "VmRSS") -> int:
    """The resident size (or its peak, VmHWM) of process ``pid``, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0]) * 1024


def test_a_good_request_gets_the_models_answer(ours):
    status, answer = post(ours, GOOD)
    assert status == 200
    [prediction] = answer["predictions"]
    assert prediction["context"] == ["have", "a", "good"]
    assert [p["word"] for p in prediction["predictions"]] == ["time", "day", "game"]
    assert prediction["predictions"][0]["probability"] == pytest.approx(0.332076, abs=5e-7)


@pytest.mark.parametrize("path", ["/ping", "/health", "/version"])
def test_ping_health_and_version(ours, path):
    status, answer = exchange(ours, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status == 200
    if path == "/version":
        import mlflow

        from wordnet import __version__
        assert answer == {"wordnet-4gram": __version__, "mlflow": mlflow.__version__}


# (name, the request's headers beyond Host, body, status, what the message must say)
REFUSED = [
    ("no Content-Type", "Content-Length: 27\r\n", b'{"inputs": ["have a good"]}', 415,
     "Content-Type None: only application/json"),
    ("text/plain", "Content-Type: text/plain\r\nContent-Length: 11\r\n", b"have a good", 415,
     "Content-Type 'text/plain'"),
    ("latin-1", "Content-Type: application/json; charset=latin-1\r\nContent-Length: 27\r\n",
     b'{"inputs": ["have a good"]}', 415, "only application/json (UTF-8)"),
    ("no Content-Length", "Content-Type: application/json\r\n", b"", 411, "no Content-Length"),
    ("chunked", "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
     b"1b\r\n" + b'{"inputs": ["have a good"]}' + b"\r\n0\r\n\r\n", 411, "chunked body is refused"),
    ("Content-Length not a number", "Content-Type: application/json\r\nContent-Length: -1\r\n",
     b"", 400, "Content-Length '-1': expected one whole number"),
    ("over the limit", "Content-Type: application/json\r\nContent-Length: 1048577\r\n", b"", 413,
     "a body of 1,048,577 bytes: at most 1,048,576 (--max-body-bytes, $WORDNET_SERVE_MAX_BODY)"),
    ("wrong path", "Content-Type: application/json\r\nContent-Length: 2\r\n", b"{}", 404, "no /x"),
]


@pytest.mark.parametrize("name, headers, body, status, message", REFUSED,
                         ids=[r[0] for r in REFUSED])
def test_a_request_is_refused_by_its_headers(ours, name, headers, body, status, message):
    path = "/x" if name == "wrong path" else "/invocations"
    got, answer = exchange(ours, f"POST {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode()
                           + body)
    assert got == status, answer
    assert message in answer["message"]
    assert post(ours, GOOD)[0] == 200                     # and the server goes on


# (name, body, what the 400's message must say)
BAD_BODIES = [
    ("JSON nested 100,000 deep", b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     "it is nested too deeply to parse"),
    ("malformed JSON", b'{"inputs": ["have a good"', "valid JSON formatted string"),
    ("invalid UTF-8", b'{"inputs": ["have a \xff"]}', "valid JSON formatted string"),
    ("a JSON list", b'["have a good"]', "a JSON object with an 'inputs' list"),
    ("no inputs", b'{"instances": ["have a good"]}', "a JSON object with an 'inputs' list"),
    ("inputs not a list", b'{"inputs": "have a good"}', "Expected list, but got str"),
    ("a null input", b'{"inputs": [null]}', "Expected type str, but got NoneType"),
    ("params not an object", b'{"inputs": ["have a good"], "params": [3]}',
     "params must be a JSON object"),
    ("unknown param", b'{"inputs": ["have a good"], "params": {"top-k": 3}}',
     "unknown params ['top-k']: the only one is top_k"),
    ("top_k a string", b'{"inputs": ["have a good"], "params": {"top_k": "3"}}',
     "top_k must be in 1..250, got '3'"),
    ("unknown word", b'{"inputs": ["have a good", "hve a good"]}',
     "inputs[1] 'hve a good': 'hve' is not in the vocabulary (closest: have"),
    ("too many contexts", json.dumps({"inputs": ["have a good"] * 10_001}).encode(),
     "10,001 contexts in one request: at most 10,000 ($WORDNET_SERVE_MAX_CONTEXTS)"),
    ("too many predictions", json.dumps({"inputs": ["have a good"] * 401,
                                         "params": {"top_k": 250}}).encode(),
     "401 contexts x top_k 250 = 100,250 predictions in one answer: at most 100,000"),
]


@pytest.mark.parametrize("name, body, message", BAD_BODIES, ids=[r[0] for r in BAD_BODIES])
def test_a_bad_body_is_a_400_that_names_the_problem(ours, name, body, message):
    status, answer = post(ours, body)
    assert status == 400, answer
    assert message in answer["message"]
    assert answer["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")


def test_a_long_error_message_is_cut(ours):
    status, answer = post(ours, json.dumps({"inputs": ["have a good"],
                                            "params": {"x" * 100_000: 1}}).encode())
    assert status == 400
    message = answer["message"]
    assert len(message) <= server.MAX_MESSAGE and "characters cut" in message
    assert message.startswith("unknown params ['xxx")
    assert message.endswith("xxx']: the only one is top_k")


def test_a_50_mb_body_is_refused_at_once_without_being_read(ours):
    """The headers announce 50 MB: the 413 comes before the body is sent, and the
    server's resident memory does not grow by the body's size."""
    size = 50_000_000
    before = rss(ours[2])
    start = time.monotonic()
    with socket.create_connection(ours[:2], timeout=30) as s:
        s.sendall(f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: {JSON}\r\n"
                  f"Content-Length: {size}\r\n\r\n".encode())
        sender = threading.Thread(target=send_quietly, args=(s, size), daemon=True)
        sender.start()                                    # the body, as a client sends it
        response = http.client.HTTPResponse(s)
        response.begin()
        answer = json.loads(response.read())
        elapsed = time.monotonic() - start
        sender.join(timeout=30)
    after = rss(ours[2])
    print(f"\n50 MB body refused in {elapsed * 1e3:.0f} ms; the server's RSS {before / 2**20:.0f} "
          f"MB before, {after / 2**20:.0f} MB after, peak {rss(ours[2], 'VmHWM') / 2**20:.0f} MB")
    assert response.status == 413 and "a body of 50,000,000 bytes" in answer["message"]
    assert response.getheader("Connection") == "close"
    assert elapsed < 2
    assert after - before < 10 * 2**20
    assert post(ours, GOOD)[0] == 200


def test_only_a_body_that_passes_is_asked_for(ours):
    """curl's `Expect: 100-continue`: a 413 at once for a body over the limit, no 100
    Continue; a 100 Continue for one within it."""
    for length, first in [(50_000_000, b"HTTP/1.1 413 "), (27, b"HTTP/1.1 100 Continue")]:
        with socket.create_connection(ours[:2], timeout=10) as s:
            s.sendall(f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: {JSON}\r\n"
                      f"Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n".encode())
            assert s.recv(100).startswith(first)


def send_quietly(s: socket.socket, size: int) -> None:
    chunk = b"[" * (1 << 20)
    try:
        for _ in range(size // len(chunk)):
            s.sendall(chunk)
    except OSError:                                       # the server closed: expected
        pass


def test_the_largest_requests_stay_small(ours):
    """The largest body accepted (1 MiB, of contexts the model then refuses) and the
    largest answer (10,000 contexts x top_k 10): the server's peak stays under 500 MB."""
    body = json.dumps({"inputs": ["have a good"] * ((server.MAX_BODY - 20) // 15)}).encode()
    body += b" " * (server.MAX_BODY - len(body))          # white space after the JSON
    assert len(body) == server.MAX_BODY
    start = time.monotonic()
    status, answer = post(ours, body)
    refused = time.monotonic() - start
    assert status == 400 and "contexts in one request: at most 10,000" in answer["message"]
    start = time.monotonic()
    status, answer = post(ours, json.dumps({"inputs": ["have a good"] * 10_000,
                                            "params": {"top_k": 10}}).encode())
    answered = time.monotonic() - start
    assert status == 200 and len(answer["predictions"]) == 10_000
    peak = rss(ours[2], "VmHWM")
    print(f"\n1 MiB body ({len(body):,} bytes) refused by the model in {refused * 1e3:.0f} ms; "
          f"10,000 contexts x top_k 10 answered in {answered:.1f} s; peak RSS "
          f"{peak / 2**20:.0f} MB")
    assert peak < 500 * 2**20


class Blocking:
    """A model whose predict waits for ``release``: requests that stay at work."""

    def __init__(self):
        self.release, self.entered = threading.Event(), threading.Semaphore(0)

    def predict(self, inputs, params):
        self.entered.release()
        self.release.wait(timeout=30)
        return []


@pytest.fixture
def in_process():
    """Start a server.Server in this process on a free port: start(model, **options)
    returns its address; every server started is shut down after the test."""
    started = []

    def start(model, **options):
        s = server.Server(("127.0.0.1", 0), model, server.MAX_BODY, **options)
        threading.Thread(target=s.serve_forever, daemon=True).start()
        started.append(s)
        return "127.0.0.1", s.server_port

    yield start
    for s in started:
        s.shutdown()
        s.server_close()


def test_a_saturated_server_answers_503(in_process):
    model = Blocking()
    address = in_process(model, working=1, queue_seconds=0.2)
    first = threading.Thread(target=post, args=(address, GOOD), daemon=True)
    first.start()
    assert model.entered.acquire(timeout=10)              # the first is at work
    start = time.monotonic()
    status, answer = post(address, GOOD)
    assert status == 503 and answer["message"] == ("1 requests at work already: "
                                                   "try again later")
    assert time.monotonic() - start < 5
    model.release.set()
    first.join(timeout=10)
    assert post(address, GOOD) == (200, {"predictions": []})


def test_connections_beyond_the_limit_get_503(in_process):
    address = in_process(Blocking(), connections=1)
    held = http.client.HTTPConnection(*address, timeout=10)
    try:
        held.request("GET", "/ping")                      # kept alive: the only one
        assert held.getresponse().read() == b"\n"
        status, answer = post(address, GOOD)
    finally:
        held.close()
    assert status == 503 and answer["message"] == ("1 connections open already: "
                                                   "try again later")


def test_a_body_that_does_not_come_is_a_408(in_process, monkeypatch):
    monkeypatch.setattr(server.Handler, "timeout", 0.5)
    address = in_process(Blocking())
    start = time.monotonic()
    status, answer = exchange(address, f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: "
                              f"{JSON}\r\nContent-Length: 100\r\n\r\n{{\"inputs\"".encode())
    assert status == 408 and "the body did not arrive" in answer["message"]
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("signum, status, said", [(signal.SIGTERM, 143, "Terminated."),
                                                  (signal.SIGINT, 130, "Interrupted.")])
def test_the_server_stops_cleanly(data_dir, servers, tmp_path, signum, status, said):
    port = servers.free_port()
    process = subprocess.Popen([str(BIN / "wordnet-pipeline"), "serve", "-m",
                                str(data_dir / "model9-3000.bin"), "--port", str(port)],
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        assert line == (f"serving on http://127.0.0.1:{port}/invocations (bodies up to "
                        "1,048,576 bytes; Ctrl-C stops)\n")
        process.send_signal(signum)
        assert process.wait(timeout=30) == status
        assert process.stderr.read().strip().splitlines()[-1] == said
    finally:
        process.kill()
        process.wait(timeout=30)


@pytest.mark.parametrize("args, status, message", [
    (["--model", "nope.bin"], 1, "Error: nope.bin: no such model file"),
    (["--max-body-bytes", "0"], 2, "0 is not in the range x>=1"),
    (["--port", "70000"], 2, "70000 is not in the range 0<=x<=65535"),
])
def test_bad_options_are_one_line(args, status, message):
    result = CliRunner().invoke(cli, ["serve", *args])
    assert result.exit_code == status
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_bad_limit_in_the_environment_is_one_line(data_dir, monkeypatch):
    monkeypatch.setenv("WORDNET_SERVE_MAX_CONTEXTS", "many")
    result = CliRunner().invoke(cli, ["serve", "-m", str(data_dir / "model9-3000.bin")])
    assert result.exit_code == 1
    assert result.stderr == ("Error: $WORDNET_SERVE_MAX_CONTEXTS must be a positive whole "
                             "number, got 'many'\n")
