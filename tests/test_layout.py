"""The package's layers (docs/contributing.md): each subpackage imports only from its own
layer or those below it, no module imports itself back through others, each module is
readable in a sitting, and only a model kind's own module names it."""
import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "wordnet"
# bottom to top; a module may import from its own layer and those before it
LAYERS = ["errors", "fileio", "processes", "progress", "data", "models", "training", "plots",
          "tracking", "runs", "sweeps", "serving", "use", "exits", "cli"]
MAX_LINES = 400


def modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
            .removesuffix(".__init__"): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> set[str]:
    """The wordnet modules ``path`` imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wordnet"):
            found |= ({f"wordnet.{a.name}" for a in node.names} if node.module == "wordnet"
                      else {node.module})
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("wordnet")}
    return found


def layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2 or parts[1].startswith("_"):
        return None                               # the package itself, the compiled kernels
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def test_every_module_is_in_a_layer():
    unplaced = [m for m in modules() if m != "wordnet" and layer(m) is None
                and not m.split(".")[1].startswith("_")]
    assert unplaced == []


def test_no_import_runs_up_a_layer():
    up = [f"{m} -> {d}" for m, path in modules().items() for d in imports(path)
          if layer(m) is not None and layer(d) is not None and layer(d) > layer(m)]
    assert up == []


def test_no_import_circle():
    known = modules()
    graph = {m: {d for d in imports(p) if d in known and d != m} for m, p in known.items()}
    state = {}

    def visit(m, path):
        state[m] = "open"
        for d in graph[m]:
            if state.get(d) == "open":
                pytest.fail("import circle: " + " -> ".join(path + [d]))
            if d not in state:
                visit(d, path + [d])
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_each_module_is_readable_in_a_sitting():
    long = {m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_only_a_kinds_own_module_and_the_registry_name_it():
    """A string switch on the model kind (``config.model == "window"``) outside the
    kind's module is what adding a model would have to find and edit."""
    from wordnet.models import registry
    names = "|".join(map(re.escape, registry.KINDS))
    switch = re.compile(rf"""(==|!=|\bin\b)\s*\(?["']({names})["']|["']({names})["']\s*(==|!=)""")
    found = [f"{path.relative_to(PACKAGE)}:{n}" for m, path in modules().items()
             for n, line in enumerate(path.read_text().splitlines(), 1) if switch.search(line)]
    assert found == []
