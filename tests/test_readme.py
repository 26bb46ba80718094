"""The README, executed: every shell command of its ```sh, ```bash and ```console blocks
and every ```python block runs, in order, in a fresh folder (a fresh MLflow store
there: `mlflow.db`, MLflow's default), and must exit with status 0; where the README
shows a command's output (a ```console block), the output must be that.  The same for
docs/python.md.  Every `wordnet-pipeline` command of the other pages must parse (click
accepts its command, options and values).

The suite needs no network: `data fetch` reads a loopback mirror of upstream
($WORDNET_DATA_URL).  What cannot run as written is in the explicit lists below, each
entry with its reason, and a command matching no rule runs as written:

- SYNOPSES: `[...]` marks optional parts: the command runs without them, then with all.
- PLACEHOLDERS: RUN_ID and MODEL, filled from an earlier command's output or named.
- INSTALLS: `pip install .` is what made this environment: the harness checks that
  the installed distribution is this one and declares the extras asked for.
- SERVERS: a command that serves until stopped (`mlflow ui`, `... serve`) starts on a
  free loopback port, must answer, and is stopped at the end of its block; the block's
  `curl` requests go to each server the block started, and must get the same answer.
- INPUTS: what a command reads from its standard input (`generate --interactive`).
- SHORTENED: commands that train the reference recipe again and again (a second and
  third training, a sweep's 6 or 20 trials), minutes each on a busy machine: a run is
  cut to one epoch (`--set epochs=1`: its reproduce stage still passes), a sweep's
  trials to 101 updates; a run on the King James Bible to 300 updates.  `run --stage
  all` runs in full.
- A line with a pipe or a redirection runs in bash.
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import click
import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHELL_BLOCKS = {"sh", "bash", "console"}

SERVERS = {"mlflow ui": "/", "wordnet-pipeline serve": "/ping", "mlflow models serve": "/ping"}
INPUTS = {"wordnet-pipeline generate --interactive": "have a good\n1\n\nq\n"}
ONE_EPOCH = ("--set", "epochs=1")                    # 3,001 updates: still beats the unigram
SHORTENED = {"wordnet-pipeline run --set learning_rate=0.05 --set hidden_size=100": ONE_EPOCH,
             "wordnet-pipeline run --stage train --out runs/a": ONE_EPOCH,
             "wordnet-pipeline sweep ": ("--set", "epochs=1", "--set", "early_stop=100"),
             # the King James Bible: an epoch is minutes at 4,877 words
             "wordnet-pipeline run --data-dir kjv": ("--set", "early_stop=300")}
# placeholder -> (the command whose output fills it, the pattern that finds it there)
FILLED_FROM = {"RUN_ID": ("wordnet-pipeline run --stage train --out runs/a",
                          r"/runs/([0-9a-f]{32})")}
NAMED = {"MODEL": "published"}                       # the shipped model, by its name
# programs the README uses that are not Python's: the rest of the page is skipped without
# them, except in CI, which installs them (.ci/run)
NEEDS = {"bible": "apt-get install bible-kjv"}


@dataclass
class Step:
    kind: str                       # "shell" or "python"
    text: str                       # a command's words, shell-quoted; a block's code
    where: str                      # file:line
    block: int                      # the block's number in the page
    expected: list[str] = field(default_factory=list)     # output the page shows


def steps(page: Path) -> list[Step]:
    """The page's commands and Python blocks, in order."""
    found, lines = [], page.read_text().splitlines()
    i, block = 0, 0
    while i < len(lines):
        fence = re.fullmatch(r"```(\w*)\s*", lines[i])
        if not fence:
            i += 1
            continue
        lang, start, block = fence.group(1), i + 1, block + 1
        end = next(j for j in range(start, len(lines)) if lines[j].startswith("```"))
        body, i = lines[start:end], end + 1
        where = f"{page.name}:{start + 1}"
        if lang == "python":
            found.append(Step("python", "\n".join(body), where, block))
        elif lang in SHELL_BLOCKS:
            found += shell_steps(body, lang == "console", where, block)
    return found


def shell_steps(body: list[str], console: bool, where: str, block: int) -> list[Step]:
    found, pending = [], ""
    for line in body:
        if console and not pending and not line.startswith("$ "):
            found[-1].expected.append(line)          # output of the command before
            continue
        line = line[2:] if console and not pending else line
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            words = shlex.split(pending, comments=True)
            found.append(Step("shell", shlex.join(words), where, block))
            pending = ""
    return found


def variants(words: list[str]) -> list[list[str]]:
    """A synopsis ``cmd [--a 1] [--b]`` as the commands it stands for: without the
    optional parts, then with all of them; a plain command as itself."""
    if not any(w.startswith("[") for w in words):
        return [words]
    bare, full, depth = [], [], 0
    for w in words:
        depth += w.startswith("[")
        if depth:
            full.append(w.strip("[]"))
        else:
            bare.append(w)
            full.append(w)
        depth -= w.endswith("]")
    return [bare, full]


def fill(words: list[str], outputs: dict[str, str]) -> list[str]:
    """The placeholders of ``words`` filled: from an earlier command's output, or named."""
    filled = []
    for w in words:
        if w in FILLED_FROM:
            source, pattern = FILLED_FROM[w]
            found = re.findall(pattern, outputs[source])
            assert found, f"{w}: `{source}` printed none"
            w = found[-1]
        filled.append(NAMED.get(w, w))
    return filled


def words_of(lines) -> list[list[str]]:
    return [line.split() for line in lines if line.strip()]


class Session:
    """A fresh folder, the environment a new user has there, and what ran."""

    def __init__(self, folder: Path, servers, mirror: str):
        self.folder, self.servers, self.outputs, self.ran = folder, servers, {}, []
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("MLFLOW_", "WORDNET_")) and k != "PYTHONPATH"}
        self.env.update(PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", WORDNET_DATA_URL=mirror)

    def shell(self, text: str, expected: list[str] = ()) -> str:
        args = shlex.split(text)
        if args[0] in NEEDS and not shutil.which(args[0]):
            message = f"no `{args[0]}` for `{text}`: {NEEDS[args[0]]}"
            if os.environ.get("CI"):
                pytest.fail(message + " (.ci/run installs it)")
            pytest.skip(message)
        if args[:2] == ["pip", "install"]:
            return self.installed(args[2:])
        extra = next((v for k, v in SHORTENED.items() if text.startswith(k)), ())
        # a pipe or a redirection (`bible ... > kjv.txt`): the line as a shell runs it
        piped = " ".join(a if a in ("|", ">") else shlex.quote(a) for a in args)
        command = ["bash", "-c", piped] if {"|", ">"} & set(args) else [*args, *extra]
        done = subprocess.run(command, cwd=self.folder, env=self.env, text=True,
                              capture_output=True, timeout=900,
                              input=next((v for k, v in INPUTS.items() if text.startswith(k)), ""))
        self.ran.append(shlex.join(command))
        assert done.returncode == 0, f"`{text}` exited {done.returncode}:\n{done.stderr[-3000:]}"
        if expected:
            assert words_of(done.stdout.splitlines()) == words_of(expected), done.stdout
        self.outputs[text] = done.stdout + done.stderr
        return done.stdout

    def python(self, code: str) -> str:
        done = subprocess.run([sys.executable, "-c", code], cwd=self.folder, env=self.env,
                              text=True, capture_output=True, timeout=900)
        self.ran.append("python: " + code.splitlines()[0])
        assert done.returncode == 0, f"{code}\n{done.stderr[-3000:]}"
        return done.stdout

    def installed(self, what: list[str]) -> str:
        """`pip install .` made this environment: this checkout's distribution is here,
        with the extras asked for declared (the test extra's packages importable)."""
        dist = metadata.distribution("wordnet-4gram")
        extras = set(dist.metadata.get_all("Provides-Extra") or [])
        for target in what:
            asked = re.fullmatch(r"\.(?:\[([\w,]+)\])?", target.strip("'\""))
            assert asked, f"pip install {target}: not this checkout"
            assert set(filter(None, (asked.group(1) or "").split(","))) <= extras
        self.ran.append("pip install (checked): " + " ".join(what))
        return ""

    def serve(self, text: str, port: int):
        prefix = next(p for p in SERVERS if text.startswith(p))
        args = shlex.split(text)
        if "--port" in args:
            args[args.index("--port") + 1] = str(port)
        else:
            args += ["--port", str(port)]
        url = f"http://127.0.0.1:{port}"
        self.ran.append(shlex.join(args) + " (served)")
        return self.servers.start(args, url + SERVERS[prefix], self.folder / f"server-{port}.log",
                                  timeout=180, env=self.env, cwd=self.folder)


def run_page(session: Session, page: Path) -> None:
    """Every step of ``page`` in order; a block's servers answer its `curl` requests."""
    by_block: dict[int, list[Step]] = {}
    for step in steps(page):
        by_block.setdefault(step.block, []).append(step)
    for block in by_block.values():
        servers = [s for s in block if s.kind == "shell" and s.text.startswith(tuple(SERVERS))]
        requests = [s for s in block if s.kind == "shell" and s.text.startswith("curl ")]
        for step in block:
            if step.kind == "python":
                session.python(step.text)
            elif step not in servers and step not in requests:
                for words in variants(shlex.split(step.text)):
                    session.shell(shlex.join(fill(words, session.outputs)), step.expected)
        answers = []
        for server in servers:
            port = session.servers.free_port()
            with session.serve(server.text, port):
                for request in requests:
                    sent = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", request.text)
                    answers.append(session.shell(sent))
                if not requests:
                    check_ui(port)
        if requests:
            assert len(set(answers)) == 1, answers        # every server gives the same answer
            body = json.loads(answers[0])
            assert all(len(p["predictions"]) == 3 for p in body["predictions"]), body


def check_ui(port: int) -> list[str]:
    """MLflow's UI in the folder of the runs shows their store: the runs' experiment."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search",
                                     data=b'{"max_results": 100}',
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        names = [e["name"] for e in json.load(response)["experiments"]]
    assert any(n.startswith("wordnet") for n in names), names
    return names


@pytest.fixture
def session(tmp_path, servers, upstream):
    """A fresh folder, and upstream's files on a loopback mirror for `data fetch`."""
    (tmp_path / "work").mkdir()
    yield Session(tmp_path / "work", servers, upstream)


# -- the pages, executed --------------------------------------------------------------

@pytest.mark.slow
def test_every_readme_command_runs_as_shown(session):
    run_page(session, CHECKOUT / "README.md")
    print("\n" + "\n".join(session.ran))
    assert (session.folder / "mlflow.db").is_file()          # the runs were tracked here


@pytest.mark.slow
def test_the_python_page_runs(session):
    run_page(session, CHECKOUT / "docs" / "python.md")
    assert (session.folder / "data" / "train_data.csv").is_file()


def test_the_readme_shows_the_output_it_checks():
    """The harness sees the README's commands, its shown outputs and its placeholders."""
    found = steps(CHECKOUT / "README.md")
    shown = {s.text: s.expected for s in found if s.expected}
    assert words_of(shown["wordnet-pipeline predict 'have a good'"])[0] == ["1.", "time",
                                                                          "0.258806"]
    assert words_of(shown["wordnet-pipeline predict 'have a good' --model published --top-k 3"]) \
        == [["1.", "time", "0.332076"], ["2.", "day", "0.102091"], ["3.", "game", "0.059815"]]
    texts = [s.text for s in found]
    for source, _ in FILLED_FROM.values():
        assert source in texts                   # what fills a placeholder comes first
    assert any(t.startswith(tuple(SERVERS)) for t in texts)
    assert variants("x [--k 10] y [MODEL]".split()) == [["x", "y"], "x --k 10 y MODEL".split()]


# -- every page's `wordnet-pipeline` commands parse -----------------------------------

def leftover(ctx: click.Context) -> list[str]:
    """The tokens a group left for its subcommand: ``protected_args`` and ``args`` (click
    9 puts them all in ``args`` and drops ``protected_args``, deprecated since 8.2)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        protected = getattr(ctx, "protected_args", [])
    return [*protected, *ctx.args]


def parse(args: list[str]) -> click.Command:
    """The command ``args`` name, once click accepted every option and value."""
    from wordnet.cli import cli
    ctx = cli.make_context("wordnet-pipeline", args)
    command, rest = cli, leftover(ctx)
    while isinstance(command, click.Group):
        name, command, rest = command.resolve_command(ctx, rest)
        ctx = command.make_context(name, rest, parent=ctx)
        rest = leftover(ctx) if isinstance(command, click.Group) else []
    return command


PAGES = sorted((CHECKOUT / "docs").glob("*.md")) + [CHECKOUT / "README.md",
                                                    CHECKOUT / "benchmarks" / "README.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(CHECKOUT).as_posix())
def test_every_documented_command_parses(page, tmp_path, data_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dummies = {"RUN_ID": "0" * 32, "MODEL": "published", "DIR": str(tmp_path), "N": "1000",
               "/path/to/wordnet-data": str(data_dir)}
    for step in steps(page):
        if step.kind != "shell" or not step.text.startswith("wordnet-pipeline "):
            continue
        for words in variants(shlex.split(step.text)):
            words = [dummies.get(w.removesuffix("..."), w) for w in words]
            try:
                parse(words[1:])
            except click.ClickException as e:
                pytest.fail(f"{step.where}: `{shlex.join(words)}`: {e.format_message()}")
