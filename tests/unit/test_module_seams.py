"""The seams between hydra's core modules, read from the source with ``ast``.

- No module but ``engine.py`` touches a private member of the engine (``engine._x``,
  ``self.engine._x``, ``ctx.engine._x``): what the runner, the worker, the cron scheduler,
  the test environment and the CLI need from it is public (``engine.runtime``,
  ``engine.cron``, ...).
- The core modules import each other without a cycle, counting every import: those
  under ``if TYPE_CHECKING:`` and those inside functions too.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HYDRA = REPO / "hydra"


def _sources(*folders: Path) -> list[Path]:
    return sorted(path for folder in folders for path in folder.glob("*.py"))


def _engine_private_uses(source: str, label: str) -> list[str]:
    """``<...>.engine._name`` and ``engine._name`` in ``source`` (dunders excepted)."""
    found = []
    for node in ast.walk(ast.parse(source, label)):
        if not isinstance(node, ast.Attribute):
            continue
        private = node.attr.startswith("_") and not node.attr.startswith("__")
        owner = node.value
        named_engine = (isinstance(owner, ast.Name) and owner.id == "engine") or (
            isinstance(owner, ast.Attribute) and owner.attr == "engine"
        )
        if private and named_engine:
            found.append(f"{label}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_but_the_engine_touches_a_private_member_of_the_engine() -> None:
    paths = _sources(HYDRA, HYDRA / "testing", REPO / "hydra_cli")
    uses = [
        use
        for path in paths
        if path.name != "engine.py"
        for use in _engine_private_uses(path.read_text(), str(path.relative_to(REPO)))
    ]
    assert uses == []


def test_the_check_finds_a_private_use() -> None:
    probe = "def f(w, engine):\n    w.engine._track_run(1)\n    engine._lock\n    engine.__doc__\n"
    assert sorted(_engine_private_uses(probe, "probe.py")) == [
        "probe.py:2: w.engine._track_run",
        "probe.py:3: engine._lock",
    ]


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``path`` imports, wherever the import statement is."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets.add(base)
            # ``from hydra import runner`` imports the module hydra.runner.
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    edges = set()
    for target in targets:
        # ``hydra.store.base`` counts as an import of the nearest known module.
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            edges.add(target)
    return edges


def _core_graph() -> dict[str, set[str]]:
    # The package __init__ files import everything on purpose (the public names); a
    # module importing one of them is caught below, as an edge to a module not allowed.
    paths = [p for p in _sources(HYDRA, HYDRA / "testing") if p.name != "__init__.py"]
    known = {_module_name(p) for p in paths}
    return {_module_name(p): _imports(p, known) for p in paths}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that ends where it began), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_the_core_modules_import_each_other_without_a_cycle() -> None:
    graph = _core_graph()
    assert {"hydra.engine", "hydra.runner", "hydra.worker", "hydra.cron"} <= set(graph)
    assert graph["hydra.runner"], "the graph was read: the runner imports core modules"
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
