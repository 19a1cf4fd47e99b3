"""Check semguard's import structure: no semguard import inside a function, no import cycle.

    python scripts/check_imports.py            # prints every problem, exit 1 if any

Module-level imports only (an import inside a function hides a cycle until someone moves it).
The exceptions are the CLI handlers' lazy imports of heavy optional libraries; those are not
semguard modules and so are not checked here. Cycles are looked for twice: between modules
(files) and between packages (semguard.data, semguard.models, ...), on the graph of every
semguard import, module-level or not.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "semguard"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path: Path, modules: set[str]) -> list[tuple[str, int, bool]]:
    """(imported semguard module, line, inside a function) for every semguard import in PATH."""
    tree = ast.parse(path.read_text(), filename=str(path))
    current = module_name(path)
    is_package = path.name == "__init__.py"
    found = []

    def visit(node, in_function: bool, in_type_checking: bool):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            guard = in_type_checking or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                target = resolve(child, current, is_package)
                names = [target] + [f"{target}.{alias.name}" for alias in child.names]
            else:
                visit(child, nested, guard)
                continue
            if guard:
                continue
            for name in names:
                if not name.startswith("semguard"):
                    continue
                while name not in modules and "." in name:
                    name = name.rsplit(".", 1)[0]
                if name in modules and name != current and (name, child.lineno, in_function) not in found:
                    found.append((name, child.lineno, in_function))
    visit(tree, False, False)
    return found


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def strongconnect(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                strongconnect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(10000)
    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return result


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def problems() -> list[str]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in files}
    graph: dict[str, set[str]] = {}
    out = []
    for path in files:
        current = module_name(path)
        graph.setdefault(current, set())
        for target, line, in_function in imports_of(path, modules):
            # a package's __init__ re-exporting its own modules is not a dependency of them on it
            if path.name == "__init__.py" and target.startswith(current + "."):
                continue
            # importing a package's submodule runs that package's __init__ first, but that is
            # not a dependency of this module on the package's other modules
            graph[current].add(target)
            if in_function:
                out.append(f"{path.relative_to(ROOT)}:{line}: imports {target} inside a function")
    for cycle in find_cycles(graph):
        out.append("module cycle: " + " <-> ".join(cycle))
    packages: dict[str, set[str]] = {}
    for source, targets in graph.items():
        for target in targets:
            a, b = package_of(source), package_of(target)
            if a != b and a != "semguard" and b != "semguard":
                packages.setdefault(a, set()).add(b)
    for cycle in find_cycles(packages):
        out.append("package cycle: " + " <-> ".join(cycle))
    return out


def main() -> int:
    found = problems()
    for line in found:
        print(line)
    print(f"{len(found)} import problem(s)" if found else "imports: no function-level semguard import, no cycle")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
