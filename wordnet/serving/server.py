"""``wordnet-pipeline serve``: the pyfunc model over HTTP, guarded before any parsing.

The request and the answer are those of MLflow's scoring server (``mlflow models
serve``): ``POST /invocations`` with ``{"inputs": ["have a good", ...], "params":
{"top_k": 3}}`` answers ``{"predictions": [...]}``, computed by the pyfunc model's
own ``predict`` (wordnet.serving.pyfunc.WordNetModel), which also bounds the request's
cost; ``GET /ping`` and ``/health`` answer 200, ``GET /version`` the versions.  What
MLflow's server leaves open is checked here, before the body is read:

- a Content-Type of application/json (charset utf-8 at most), else 415;
- a Content-Length (411 without one: chunked bodies are refused) of at most the body
  limit (MAX_BODY; --max-body-bytes, $WORDNET_SERVE_MAX_BODY), else 413;
- at most WORKING requests at work at once, each waiting at most QUEUE_SECONDS for
  its turn, and at most CONNECTIONS connections, else 503;
- every read of the socket within READ_SECONDS, the whole body within BODY_SECONDS
  (408).
A refused body is never read: the answer goes out, what the client still sends for
LINGER_SECONDS is discarded (so that it reads the answer, not a reset), and the
connection closes.  JSON nested too deeply is a 400 like any invalid JSON, and error
messages are cut to MAX_MESSAGE characters.
"""
from __future__ import annotations

import json
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from wordnet import __version__

MAX_BODY = 1 << 20               # 1 MiB (the CLI's default): 10,000 contexts take 150 kB
MAX_BODY_ENV = "WORDNET_SERVE_MAX_BODY"
WORKING = 2                     # requests at work at once: the forward passes share 2 cores
QUEUE_SECONDS = 10              # the longest a request waits for its turn
CONNECTIONS = 32                # open connections, idle ones included
READ_SECONDS = 10               # each read of the socket, headers and body
BODY_SECONDS = 30               # the whole body
LINGER_SECONDS = 1              # discarding what a refused request still sends
MAX_MESSAGE = 2000              # characters of an error message
REQUEST = '{"inputs": ["have a good"], "params": {"top_k": 5}}'


class Refused(Exception):
    """A request answered with an error: its HTTP status, MLflow's error code, why."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code = status, code


def answer(model, body: bytes) -> bytes:
    """The JSON answer of ``model`` (a WordNetModel) to the request ``body``, as MLflow's
    scoring server gives it; Refused for a bad request."""
    from mlflow.exceptions import MlflowException

    from wordnet.serving.pyfunc import ANSWERS
    try:
        request = json.loads(body)
    except RecursionError:
        raise Refused(400, "BAD_REQUEST", "Ensure that input is a valid JSON formatted "
                      "string: it is nested too deeply to parse") from None
    except ValueError as e:                       # JSONDecodeError, UnicodeDecodeError
        raise Refused(400, "BAD_REQUEST",
                      f"Ensure that input is a valid JSON formatted string: {e}") from None
    if not isinstance(request, dict) or "inputs" not in request:
        raise Refused(400, "BAD_REQUEST", f"the request must be a JSON object with an 'inputs' "
                      f"list, such as {REQUEST}")
    params = request.get("params")
    if params is not None and not isinstance(params, dict):
        raise Refused(400, "BAD_REQUEST", "params must be a JSON object, such as {\"top_k\": 5}")
    if unknown := sorted(set(params or {}) - {"top_k"}):
        raise Refused(400, "BAD_REQUEST", f"unknown params {unknown}: the only one is top_k")
    try:
        predictions = model.predict(request["inputs"], params)
    except MlflowException as e:
        raise Refused(e.get_http_status_code(), e.error_code, e.message) from None
    return json.dumps({"predictions": ANSWERS.dump_python(predictions)}).encode()


def cut(message: str, limit: int = MAX_MESSAGE) -> str:
    """``message`` with its middle cut to keep it within ``limit`` characters: its
    start says what failed, its end why."""
    if len(message) <= limit:
        return message
    half = (limit - 40) // 2
    return f"{message[:half]} ... ({len(message) - 2 * half:,} characters cut) ... {message[-half:]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"                 # keep-alive, as MLflow's uvicorn
    server_version = f"wordnet/{__version__}"
    timeout = READ_SECONDS                        # socket.settimeout, for every read

    def do_GET(self):
        if self.path in ("/ping", "/health"):
            self._send(200, b"\n")
        elif self.path == "/version":
            self._send(200, json.dumps(self.server.versions).encode())
        else:
            self._refuse(Refused(404, "ENDPOINT_NOT_FOUND", f"no {self.path}: GET /ping, "
                                 "/health, /version; POST /invocations"))

    def do_POST(self):
        try:
            length = self._length()
        except Refused as e:
            return self._refuse(e)
        if not self.server.working.acquire(timeout=self.server.queue_seconds):
            return self._refuse(Refused(503, "TEMPORARILY_UNAVAILABLE", f"{self.server.at_work} "
                                        "requests at work already: try again later"))
        try:
            try:
                body = self._body(length)
            except (TimeoutError, ConnectionError):
                return self._refuse(Refused(408, "REQUEST_TIMEOUT", "the body did not arrive: "
                                            f"at most {self.timeout:g} s a read, "
                                            f"{BODY_SECONDS} s in all"))
            try:
                self._send(200, answer(self.server.model, body))
            except Refused as e:
                self._send(e.status, _error(e.code, e.args[0]))
            except Exception as e:                # ours: the traceback to the log
                traceback.print_exc()
                self._send(500, _error("INTERNAL_ERROR", f"unexpected {type(e).__name__}: {e}"))
        finally:
            self.server.working.release()

    def handle_expect_100(self):
        """``Expect: 100-continue`` (curl's, for a body over 1 kB): the client is told to
        send its body only when its headers pass; otherwise do_POST refuses it."""
        try:
            self._length()
        except Refused:
            return True
        return super().handle_expect_100()

    def _length(self) -> int:
        """The body's length, once its headers say it may be read (Refused otherwise)."""
        if self.path != "/invocations":
            raise Refused(404, "ENDPOINT_NOT_FOUND", f"no {self.path}: POST /invocations")
        content_type = self.headers.get("Content-Type")
        mime, *parameters = [p.strip().lower() for p in (content_type or "").split(";")]
        if mime != "application/json" or any(p.replace(" ", "") != "charset=utf-8"
                                             for p in parameters):
            raise Refused(415, "BAD_REQUEST", f"Content-Type {content_type!r}: only "
                          "application/json (UTF-8) is served")
        if self.headers.get("Transfer-Encoding") is not None:
            raise Refused(411, "BAD_REQUEST", "a chunked body is refused: send a Content-Length")
        lengths = set(self.headers.get_all("Content-Length") or [])
        if not lengths:
            raise Refused(411, "BAD_REQUEST", "no Content-Length: the body's size must be known")
        if len(lengths) > 1 or not next(iter(lengths)).strip().isdigit():
            raise Refused(400, "BAD_REQUEST", f"Content-Length {', '.join(lengths)!r}: "
                          "expected one whole number")
        length = int(next(iter(lengths)))
        if length > self.server.max_body:
            raise Refused(413, "REQUEST_LIMIT_EXCEEDED", f"a body of {length:,} bytes: at most "
                          f"{self.server.max_body:,} (--max-body-bytes, ${MAX_BODY_ENV})")
        return length

    def _body(self, length: int) -> bytes:
        deadline = time.monotonic() + BODY_SECONDS
        chunks = []
        while length:
            if time.monotonic() > deadline:
                raise TimeoutError
            chunk = self.rfile.read1(min(length, 1 << 16))
            if not chunk:
                raise ConnectionError("the client closed the connection")
            chunks.append(chunk)
            length -= len(chunk)
        return b"".join(chunks)

    def _send(self, status: int, body: bytes, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self, e: Refused) -> None:
        """The answer to a request whose body is left unread; the connection then closes."""
        self._send(e.status, _error(e.code, e.args[0]), close=True)
        self.wfile.flush()
        _linger(self.connection)


def _error(code: str, message: str) -> bytes:
    """An error as MLflow's server writes one (MlflowException.serialize_as_json)."""
    return json.dumps({"error_code": code, "message": cut(message)}).encode()


def _linger(connection: socket.socket) -> None:
    """Discard, for at most LINGER_SECONDS, what the client still sends after our
    answer: closing on unread data resets the connection, and the client may lose
    the answer.  Nothing is kept: one buffer, overwritten."""
    buffer, deadline = bytearray(1 << 16), time.monotonic() + LINGER_SECONDS
    try:
        connection.shutdown(socket.SHUT_WR)
        while (left := deadline - time.monotonic()) > 0:
            connection.settimeout(left)
            if not connection.recv_into(buffer):
                return
    except OSError:                               # the timeout, or the client gone
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True                         # Ctrl-C does not wait for a slow client
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], model, max_body: int,
                 working: int = WORKING, queue_seconds: float = QUEUE_SECONDS,
                 connections: int = CONNECTIONS):
        import mlflow
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, Handler)
        self.model, self.max_body, self.queue_seconds = model, max_body, queue_seconds
        self.at_work = working
        self.busy = _error("TEMPORARILY_UNAVAILABLE", f"{connections} connections open "
                           "already: try again later")
        self.working = threading.BoundedSemaphore(working)
        self.connections = threading.BoundedSemaphore(connections)
        self.versions = {"wordnet-4gram": __version__, "mlflow": mlflow.__version__}

    def process_request_thread(self, request, client_address):
        if not self.connections.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                                b"application/json\r\nContent-Length: %d\r\nConnection: "
                                b"close\r\n\r\n%s" % (len(self.busy), self.busy))
                _linger(request)
            except OSError:
                pass
            return self.shutdown_request(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()


def serve(predictor, host: str, port: int, max_body: int) -> None:
    """Serve ``predictor`` (a 4-gram predict.Predictor) as the pyfunc model until
    interrupted (Ctrl-C, SIGTERM: the caller's KeyboardInterrupt)."""
    from wordnet.serving.pyfunc import WordNetModel
    model = WordNetModel.of(predictor)
    try:
        server = Server((host, port), model, max_body)
    except OSError as e:
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    with server:
        where = f"http://{host if ':' not in host else f'[{host}]'}:{server.server_port}"
        print(f"serving on {where}/invocations (bodies up to {max_body:,} bytes; "
              "Ctrl-C stops)", file=sys.stderr, flush=True)
        server.serve_forever()
