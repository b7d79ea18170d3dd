"""The services and the tasks import each other in one direction only: the import graph of the grants package,
read from the source with ast (function-level imports included), has no cycle through grants/services/ or
grants/tasks.py. The tasks call the services; the services reach the tasks only through
grants/services/after_commit.py, which the task module connects when it is loaded."""

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "grants"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module → the grants modules it imports. `from grants.services import windows` is an edge to the submodule
    windows; `from grants.services import approve_application` an edge to the package grants.services. A module's
    own parent packages, which Python runs first anyway, are not edges."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*parent, base] if base else parent)
                for alias in node.names:
                    if f"{base}.{alias.name}" in modules:
                        targets.add(f"{base}.{alias.name}")
                    elif base in modules:
                        targets.add(base)
        graph[name] = targets - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan), each as a path that returns to
    its first module, e.g. [a, b, c, a]."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, component) for component in components]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside the component (breadth first)."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    following.append(w)
        frontier = following
    raise AssertionError(f"not a cycle: {sorted(component)}")


def _ours(module: str) -> bool:
    return module == "grants.tasks" or module == "grants.services" or module.startswith("grants.services.")


def test_no_import_cycle_runs_through_the_services_or_the_tasks():
    graph = import_graph()
    assert "grants.services.budget" in graph and "grants.tasks" in graph  # the graph is the real one
    found = [" → ".join(cycle) for cycle in cycles(graph) if any(_ours(m) for m in cycle)]
    assert not found, "import cycles:\n" + "\n".join(found)


def test_the_cycle_finder_names_a_cycle_it_is_given():
    graph = {
        "grants.services.budget": {"grants.tasks", "grants.models"},
        "grants.tasks": {"grants.services.payments"},
        "grants.services.payments": {"grants.services.budget"},
        "grants.models": set(),
    }
    assert cycles(graph) == [
        ["grants.services.budget", "grants.tasks", "grants.services.payments", "grants.services.budget"]
    ]
    assert cycles({**graph, "grants.tasks": set()}) == []


def test_function_level_imports_are_edges():
    graph = import_graph()
    # grants.tasks imports retention inside its task, and the services once imported the tasks that way.
    assert "grants.services.retention" in graph["grants.tasks"]
    assert "grants.services.after_commit" in graph["grants.services.budget"]
    assert "grants.tasks" not in graph["grants.services.budget"]


def test_every_process_can_queue_jobs_after_a_commit_without_importing_the_tasks_itself():
    """A web process never imports grants.tasks by itself: grants.apps loads it, so the services' after-commit
    queue is connected before the first request moves money."""
    code = (
        "import django; django.setup(); import sys; from grants.services import after_commit; "
        "after_commit._connected(); print('grants.tasks' in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
