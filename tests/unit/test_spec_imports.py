"""The spec's modules import one way: no cycle, no function-local or private project imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bids_app", "stimuli_models")
#: Modules of the spec and the command line.
SPEC_MODULES = ["bids_app.config", "bids_app.variants", "bids_app.variant_labels",
                "bids_app.spec_types", "bids_app.spec_checks", "bids_app.spec_files",
                "bids_app.spec_paths", "bids_app.spec_docs", "bids_app.spec_choices",
                "bids_app.spec_inputs", "bids_app.cli",
                "bids_app.cli.options", "bids_app.cli.spec_help"]
#: Function-local project imports kept on purpose, each with its reason.
ALLOWED_LOCAL = {
    # `brainenc --help` must answer without importing the pipeline (numpy, nipype, torch)
    ("bids_app.cli", "bids_app.run"),
}


def _path(module: str) -> Path:
    base = ROOT / Path(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if _path(module).name == "__init__.py" else module.split(".")[:-1]
    package = package[:len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def _imports(module: str):
    """Yield (imported module, names, at module level) for each project import of ``module``."""
    tree = ast.parse(_path(module).read_text(encoding="utf-8"))
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _absolute(module, node)
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            target, names = node.names[0].name, []
        else:
            continue
        if target.split(".")[0] in PACKAGES:
            yield target, names, id(node) in top


def _resolve(target: str, name: str) -> str:
    """``from target import name``: the submodule when ``name`` is one."""
    candidate = f"{target}.{name}"
    base = ROOT / Path(*candidate.split("."))
    return candidate if base.is_dir() or base.with_suffix(".py").exists() else target


def _graph(start: list[str]) -> dict[str, set[str]]:
    graph, todo = {}, list(start)
    while todo:
        module = todo.pop()
        if module in graph or not _path(module).exists():
            continue
        graph[module] = set()
        for target, names, top in _imports(module):
            if not top:
                continue
            for dependency in {_resolve(target, n) for n in names} or {target}:
                graph[module].add(dependency)
                todo.append(dependency)
    return graph


def test_config_and_variants_import_each_other_no_more():
    graph = _graph(["bids_app.config"])
    assert "bids_app.variants" not in graph, "config imports variants (directly or not)"
    assert "bids_app.config" in _graph(["bids_app.variants"])


def test_no_cycle_through_the_spec_modules():
    graph = _graph(SPEC_MODULES)

    def reaches(source, target, seen):
        for nxt in graph.get(source, ()):
            if nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt})):
                return True
        return False

    cyclic = [m for m in SPEC_MODULES if reaches(m, m, {m})]
    assert not cyclic


@pytest.mark.parametrize("module", SPEC_MODULES)
def test_no_function_local_or_private_project_imports(module):
    for target, names, top in _imports(module):
        if not top:
            assert (module, target) in ALLOWED_LOCAL, f"{module} imports {target} in a function"
        private = [n for n in names if n.startswith("_") and n != "__version__"]
        assert not private, f"{module} imports private {private} from {target}"
