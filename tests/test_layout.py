"""The house rules of nnlab's code, checked on its source (issue 27): imports run one way (no
circle), no function over 60 lines, and an import inside a function only where it keeps a slow
library out of a fast path, each such module saying so in its docstring."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nnlab"
# What takes seconds to import, or starts TensorFlow: worth keeping out of `--help`, a config
# check, `nnlab.report` or a worker's chief.
SLOW = {"tensorflow", "keras", "keras_tuner", "mlflow", "pandas", "sklearn", "scipy", "PIL",
        "grpc", "matplotlib", "mlxtend", "jax", "torch"}
# The Keras backends besides TensorFlow, imported only where Keras runs on them: extras of their own.
BACKEND_EXTRAS = ("jax", "torch")
LONGEST = 60
SAYS_SO = "inside functions"  # the words a module's docstring uses for its function-level imports


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def imported(node, module: str) -> list[str]:
    """The full names an import statement of `module` brings in (relative ones resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    base = node.module or ""
    if node.level:
        up = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(up + ([base] if base else []))
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]


def own(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def top_level_imports(module: str) -> list[str]:
    """Imports run when the module is imported (not those inside a function)."""
    found, pending = [], list(ast.iter_child_nodes(TREES[module]))
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found += imported(node, module)
        pending += ast.iter_child_nodes(node)
    # A package's modules import the package first.
    parent = module.rpartition(".")[0]
    return found + ([parent] if parent else [])


def function_imports(module: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(TREES[module]):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    found += [(inner.lineno, name) for name in imported(inner, module)]
    return sorted(set(found))


def slow_at_import() -> set[str]:
    """The nnlab modules whose import loads a slow library, directly or through other modules."""
    slow = set()
    changed = True
    while changed:
        changed = False
        for module in MODULES:
            if module in slow:
                continue
            names = top_level_imports(module)
            if any(name.split(".")[0] in SLOW or own(name) in slow for name in names):
                slow.add(module)
                changed = True
    return slow


def test_no_import_circle():
    edges = {module: set() for module in MODULES}
    for module in MODULES:
        for node in ast.walk(TREES[module]):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges[module] |= {own(name) for name in imported(node, module)} - {None, module}
    # Depth-first search for a path from a module back to itself.
    sys.setrecursionlimit(10000)
    state, circles = {}, []

    def visit(module, path):
        state[module] = "open"
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                circles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles: " + "; ".join(" -> ".join(circle) for circle in circles)


def test_no_function_over_sixty_lines():
    long = []
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > LONGEST:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert not long, long


def test_imports_inside_functions_keep_a_slow_library_out_and_say_so():
    slow = slow_at_import()
    needless, unsaid = [], []
    for module in sorted(MODULES):
        inner = function_imports(module)
        for line, name in inner:
            if name.split(".")[0] not in SLOW and own(name) not in slow:
                needless.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} {name}")
        docstring = ast.get_docstring(TREES[module]) or ""
        if inner and SAYS_SO not in " ".join(docstring.split()):
            unsaid.append(module)
    assert not needless, "imports inside functions that load nothing slow (move them to the top): " + ", ".join(needless)
    assert not unsaid, f"modules with imports inside functions whose docstring does not say so ({SAYS_SO!r}): {unsaid}"


@pytest.mark.parametrize("module", ["nnlab", "nnlab.search", "nnlab.finetune", "nnlab.report", "nnlab.config",
                                    "nnlab.models", "nnlab.tasks", "nnlab.cli", "nnlab.predict"])
def test_the_fast_paths_load_nothing_slow(module):
    """What `--help`, a config check and the choice of `--model` import stays light."""
    assert module in MODULES
    assert module not in slow_at_import(), f"importing {module} loads a slow library"


# Declared for what nnlab runs rather than what it imports: keras-tuner imports tensorboard in
# every trial on the TensorFlow backend without declaring it.
RUN_TIME_ONLY = {"tensorboard"}


def declared_distributions() -> set[str]:
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    return {re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower() for requirement in project["dependencies"]}


def test_every_imported_package_is_declared_and_none_other():
    # Issue 31: scipy, Pillow and grpcio came in through other packages, statsmodels for one series.
    third_party = {name.split(".")[0] for module in MODULES for node in ast.walk(TREES[module])
                   if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0)
                   for name in ([alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module])}
    third_party -= set(sys.stdlib_module_names) | {"nnlab"}
    providers = {name: {distribution.lower() for distribution in distributions}
                 for name, distributions in importlib.metadata.packages_distributions().items()}
    declared = declared_distributions()
    extras = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    backends = {re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()
                for extra in BACKEND_EXTRAS for requirement in extras[extra]}
    third_party -= backends  # each module the distribution of its name, declared as an extra
    # A module may come from several distributions (mlflow from mlflow and mlflow-skinny).
    assert {name for name in third_party if not providers.get(name, set()) & declared} == set()
    used = {distribution for name in third_party for distribution in providers.get(name, set())}
    assert declared - used - RUN_TIME_ONLY == set()
