"""A sweep's trials as Ray tasks, on a Ray started for the sweep or on a cluster.

Each trial is a task asking for ``--threads`` CPUs.  On its worker it runs
``wordnet-pipeline run`` (the package the worker has installed, the data shipped
with it) in a temporary folder, logging to the sweep's tracking server, and deletes
the folder when it ends: the model, the plots and the files are in MLflow's
artifact store, and the sweep gets the trial's manifest, figures and output.  The
pruner's questions reach the sweep through a :class:`Judge` actor.

With ``--ray-address`` the workers may be other machines: the tracking store must
then be a server they reach (``http://``), not a file on this one.  The head is
probed first (:func:`probe_head`, seconds, not Ray's minutes of retries), and a
loopback address stays loopback (:data:`LOOPBACK_ENV`).
"""
from __future__ import annotations

import atexit
import dataclasses
import importlib.util
import ipaddress
import os
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path

from wordnet.errors import ConfigError, WordNetError
from wordnet.fileio import read_bounded
from wordnet.models.base import THREADS_CEILING, check_threads, default_threads
from wordnet.runs.recipes import RECIPE_LIMIT
from wordnet.runs.rundir import MANIFEST, METRICS, RunDir
from wordnet.sweeps.executor import Options, TrialSpec
from wordnet.sweeps.search import Trial
from wordnet.sweeps.trials import (
    ANSWER_SECONDS,
    THREADS,
    TRIAL_LOG,
    finished_trial,
    run_command,
    run_process,
    thread_env,
)
from wordnet.tracking.store import is_server

QUESTION_SECONDS = 1.0          # how long the sweep's judge waits for a question at a time
PROBE_SECONDS = 5.0             # how long the head's port may take to accept a connection
# Ray turns a loopback address (127.0.0.1:PORT, localhost:PORT) into the machine's
# routable one, and then retries for minutes a head that listens on loopback only,
# unless this is "0" in the driver's environment before Ray is imported (the name is
# about Windows and macOS, where that is the default).
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class RayUnreachable(WordNetError):
    """--ray-address names no head that answers: a failure, as an unreachable server is."""


def head_address(address: str) -> tuple[str, int] | None:
    """(host, port) of --ray-address HOST:PORT (or ray://HOST:PORT); None for Ray's
    own "auto"; ConfigError when it is neither."""
    if address in ("auto", "local"):
        return None
    host, colon, port = address.split("://", 1)[-1].rpartition(":")
    host = host.strip("[]")                          # [::1]:6379
    if not colon or not host or not (port.isascii() and port.isdigit()) \
            or not 0 < int(port) < 65536:
        raise ConfigError(f"--ray-address must be HOST:PORT (the head's, as `ray start "
                          f"--head` printed it), not {address!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def probe_head(address: str, timeout: float = PROBE_SECONDS) -> None:
    """Fail within ``timeout`` seconds, saying so, when nothing accepts a connection at
    ``address``: Ray itself retries for minutes without a word."""
    target = head_address(address)
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=timeout).close()
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        raise RayUnreachable(f"cannot reach the Ray head at {address} ({reason}); start it "
                             f"(`ray start --head --port {target[1]}`), fix --ray-address, "
                             "or drop it for a Ray started here") from None


class OnRay:
    """``--executor ray``: trials as Ray tasks of ``--threads`` CPUs each, as many at
    once as the cluster's CPUs allow."""

    @staticmethod
    def configure(options: Options) -> Options:
        """Ray is installed; with --ray-address, a tracking server the workers reach;
        ``--threads`` defaults to THREADS, and is at most max_threads() (with
        --ray-address: THREADS_CEILING, the workers check their own CPUs)."""
        if options.jobs:
            raise ConfigError("--jobs is for --executor local: Ray runs as many trials "
                              "at once as its CPUs allow, --threads each")
        if importlib.util.find_spec("ray") is None:
            raise ConfigError("--executor ray needs Ray: pip install 'wordnet-4gram[ray]'")
        uri = options.tracking_uri
        if options.ray_address and not options.tracked:
            raise ConfigError("with --ray-address a trial's model and files reach you "
                              "only through MLflow: drop --no-tracking")
        if options.ray_address and not is_server(uri):
            raise ConfigError(
                f"with --ray-address the trials may run on other machines, which cannot "
                f"write to the tracking store {uri or './mlflow.db'} on this one: "
                "start `mlflow server` and pass --tracking-uri http://HOST:PORT")
        default_threads()                       # $WORDNET_THREADS checked
        if options.threads is not None:         # a cluster's machines: not this one's CPUs
            check_threads(options.threads, "--threads",
                          THREADS_CEILING if options.ray_address else None)
        if options.ray_address:
            probe_head(options.ray_address)     # RayUnreachable: before anything is made
        return dataclasses.replace(options, threads=options.threads or THREADS)

    def __init__(self, spec: TrialSpec):
        self.address, self.threads = spec.options.ray_address, spec.options.threads
        target = head_address(self.address) if self.address else None
        if target and is_loopback(target[0]):
            os.environ.setdefault(LOOPBACK_ENV, "0")    # read when Ray is imported, below
        import ray
        self.ray, self.spec = ray, spec
        # Ray puts the driver's working folder first on its workers' sys.path, unless
        # the job has a working_dir: run from a source checkout, the workers would import
        # its wordnet/, which has no compiled kernels.  An empty one keeps them on the
        # package they have installed.
        empty = tempfile.mkdtemp(prefix="wordnet-ray-")
        atexit.register(shutil.rmtree, empty, ignore_errors=True)
        ray.init(address=self.address or "local", include_dashboard=False,
                 num_cpus=None if self.address else default_threads(),
                 log_to_driver=False, configure_logging=False,
                 runtime_env={"working_dir": empty})
        self.cpus = ray.cluster_resources().get("CPU", 0.0)
        self.slots = max(1, int(self.cpus // self.threads))
        path = Path(spec.source)
        # a recipe file travels with the task; a recipe's name is found on the worker
        self.recipe = ((path.name, read_bounded(path, RECIPE_LIMIT, "recipe", ConfigError))
                       if path.is_file() else (spec.source, None))
        self.task = ray.remote(_trial_task).options(
            num_cpus=self.threads, max_retries=0,
            runtime_env={"env_vars": thread_env(self.threads)})
        self.judge = ray.remote(Judge).options(num_cpus=0).remote()
        self.running, self.lock = set(), threading.Lock()
        self.serving = threading.Thread(target=self._serve, daemon=True,
                                        name="wordnet-ray-judge")
        self.serving.start()

    def describe(self) -> str:
        return (f"Ray ({self.address or 'started here'}, {self.cpus:g} CPUs: {self.slots} at "
                f"a time, {self.threads} thread(s) each)")

    def _serve(self):
        """Answer the trials' validation points from the search, until the sweep ends."""
        while True:
            try:
                question = self.ray.get(self.judge.question.remote(QUESTION_SECONDS))
            except self.ray.exceptions.RayError:       # Ray gone: the trials fail anyway
                return
            if question == "closed":
                return
            if question is not None:
                number, point, valid_ce = question
                self.judge.answer.remote(number, point,
                                         self.spec.search.report(number, point, valid_ce))

    def __call__(self, trial: Trial) -> dict:
        spec, label = self.spec, self.spec.label(trial.values)
        ref = self.task.remote(self.recipe, trial.values, spec.stages, label, spec.where,
                               spec.parent_run_id, self.judge, trial.number)
        with self.lock:
            self.running.add(ref)
        try:
            status, files, output = self.ray.get(ref)
        except self.ray.exceptions.TaskCancelledError:     # Ctrl-C: its run ended KILLED
            status, files, output = -signal.SIGTERM, {}, "stopped (Ray cancelled the task)"
        except self.ray.exceptions.RayError as e:           # a worker lost, ...
            status, files, output = 1, {}, f"Ray: {str(e).strip().splitlines()[-1]}"
        finally:
            with self.lock:
                self.running.discard(ref)
        folder = spec.out / trial.folder              # what the trial left: its record here
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text)
        (folder / TRIAL_LOG).write_text(output)
        return finished_trial(trial, label, status, RunDir(folder), output, spec.echo)

    def stop(self):
        with self.lock:
            for ref in self.running:
                self.ray.cancel(ref)                  # KeyboardInterrupt: SIGTERM to the run

    def close(self):
        self.ray.get(self.judge.close.remote())
        self.serving.join(QUESTION_SECONDS * 5)


class Judge:
    """A Ray actor between the trials and the sweep's search: a trial's question waits
    here until the sweep answers it."""

    def __init__(self):
        import asyncio
        self.questions, self.answers, self.closed = asyncio.Queue(), {}, False

    async def ask(self, number: int, point: int, valid_ce: float) -> str | None:
        import asyncio
        answer = asyncio.get_running_loop().create_future()
        self.answers[number, point] = answer
        await self.questions.put((number, point, valid_ce))
        return await answer

    async def question(self, timeout: float):
        import asyncio
        if self.closed:
            return "closed"
        try:
            return await asyncio.wait_for(self.questions.get(), timeout)
        except asyncio.TimeoutError:
            return None

    def answer(self, number: int, point: int, why: str | None) -> None:
        future = self.answers.pop((number, point), None)
        if future is not None and not future.done():
            future.set_result(why)

    def close(self) -> None:
        self.closed = True


def _trial_task(recipe, values, stages, label, where, parent_run_id, judge, number):
    """On a Ray worker: one trial in a temporary folder, deleted at the end; returns
    its exit status, its small files (manifest, figures) and its output."""
    import ray
    if threading.current_thread() is threading.main_thread():
        # ray.cancel interrupts the main thread as SIGINT would: not when SIGINT is ignored
        # (a head started in the background from a shell)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    folder = Path(tempfile.mkdtemp(prefix="wordnet-trial-"))
    try:
        name, text = recipe
        source = name
        if text is not None:
            source = str(folder / name)
            Path(source).write_bytes(text)
        command = run_command(source, values, stages, folder / "run", None, label, where,
                              parent_run_id, installed=True)

        def ask(point, valid_ce):
            try:
                return ray.get(judge.ask.remote(number, point, valid_ce), timeout=ANSWER_SECONDS)
            except ray.exceptions.GetTimeoutError:
                return None                           # no answer: training goes on

        status = run_process(command, folder / TRIAL_LOG, dict(os.environ), ask)
        files = {name: (folder / "run" / name).read_text() for name in (MANIFEST, METRICS)
                 if (folder / "run" / name).is_file()}
        return status, files, (folder / TRIAL_LOG).read_text(errors="replace")
    finally:
        shutil.rmtree(folder, ignore_errors=True)

