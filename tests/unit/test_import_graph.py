"""The import graph of ``bids_app`` and ``stimuli_models`` stays acyclic and layered.

Every ``import`` and ``from ... import`` between the project's own modules is read
from the source (AST, no import is executed), wherever it stands: at module top or
inside a function. Four rules are checked, each failure naming the importing module,
its line and the imported name:

1. **No cycles.** Function-local imports count as edges: a cycle that only loads
   because one side imports late is still a cycle.
2. **No function-local imports between the project's modules**, except the short
   :data:`LOCAL_ALLOWED` list (lazy package attributes that keep ``brainenc --help``
   and ``import bids_app`` instant). Heavy third-party imports (torch, transformers,
   peft, himalaya, datasets, nilearn plotting) inside functions are not concerned.
3. **No private names across modules.** ``from x import _name`` between two modules
   is refused; a helper two modules share is public in a leaf module. A private
   *module* (``_common``) may be imported only from inside its own package.
4. **No upward imports.** A module imports only from its own layer or lower ones
   (:data:`LAYERS`, lowest first)::

       0 library     stimuli_models                language models, no BIDS
       1 core        errors, _version, threads ...   no analysis
       2 io          bids_app.io                     reading inputs, writing derivatives
       3 spec        config, variants, spec_paths    the experiment spec and its variants
       4 analysis    alignment, encoding, featurization, tuning, unique_variance
       5 stages      participant, plan, outputs, clean_bold, provenance, group, reports
       6 pipelines   workflows, interfaces, api, dry_run_costs, demo, standins
       7 run         run, dry_run
       8 cli         cli, __main__, the bids_app package itself

Run ``python tests/unit/test_import_graph.py`` for a summary of the graph.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bids_app", "stimuli_models")

#: Layers, lowest first; a module belongs to the layer of its longest matching prefix.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("library", ("stimuli_models",)),
    ("core", ("bids_app._version", "bids_app.errors", "bids_app.threads", "bids_app.interrupt",
              "bids_app.demo_text")),
    ("io", ("bids_app.io",)),
    ("spec", ("bids_app.config", "bids_app.variants", "bids_app.spec_paths",
              "bids_app.spec_types", "bids_app.spec_checks", "bids_app.spec_files",
              "bids_app.variant_labels", "bids_app.spec_choices", "bids_app.spec_inputs")),
    ("analysis", ("bids_app.alignment", "bids_app.encoding", "bids_app.featurization",
                  "bids_app.tuning", "bids_app.model_drift", "bids_app.unique_variance",
                  "bids_app.band_events")),
    ("stages", ("bids_app.participant", "bids_app.plan", "bids_app.outputs",
                "bids_app.clean_bold", "bids_app.provenance", "bids_app.group",
                "bids_app.reports")),
    ("pipelines", ("bids_app.workflows", "bids_app.interfaces", "bids_app.api",
                   "bids_app.dry_run_costs", "bids_app.demo", "bids_app.paper_demo",
                   "bids_app.standins")),
    ("run", ("bids_app.run_inputs", "bids_app.run", "bids_app.dry_run")),
    ("cli", ("bids_app.cli", "bids_app.__main__", "bids_app")),
]

#: Function-local imports between the project's modules that stay local, with the reason.
LOCAL_ALLOWED: dict[tuple[str, str], str] = {
    # package attributes loaded on first use: `import bids_app` / `stimuli_models` stay cheap
    ("bids_app", "bids_app.api"): "lazy package attribute (PEP 562 __getattr__)",
    ("stimuli_models", "stimuli_models.word_features"): "lazy package attribute",
    # `brainenc --help` must not import the pipeline (nipype, pybids, torch)
    ("bids_app.cli", "bids_app.run"): "keeps --help instant",
}

@dataclass(frozen=True)
class Import:
    """One imported name (or module) between two of the project's modules."""

    source: str
    target: str
    name: str
    line: int
    function: str  # enclosing function ('' at module level)

    def __str__(self) -> str:
        where = f" inside {self.function}()" if self.function else ""
        what = f" ({self.name})" if self.name else ""
        return f"{self.source}:{self.line} imports {self.target}{what}{where}"


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted name -> file of every module of the project's packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _enclosing_functions(tree: ast.Module) -> dict[int, str]:
    """``id(import node) -> name`` of the innermost function holding it."""
    owner: dict[int, str] = {}

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = (child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                     else function)
            if isinstance(child, (ast.Import, ast.ImportFrom)) and function:
                owner[id(child)] = function
            visit(child, inner)

    visit(tree, "")
    return owner


def collect_imports(modules: dict[str, Path]) -> list[Import]:
    """Every import between the project's modules, top-level and function-local."""
    found = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        functions = _enclosing_functions(tree)
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            function = functions.get(id(node), "")
            if isinstance(node, ast.ImportFrom):
                target = _absolute(module, node, is_package)
                if target.split(".")[0] not in PACKAGES:
                    continue
                for alias in node.names:
                    submodule = f"{target}.{alias.name}"
                    if submodule in modules:  # `from package import module`
                        found.append(Import(module, submodule, "", node.lineno, function))
                    else:
                        found.append(Import(module, target, alias.name, node.lineno, function))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in PACKAGES:
                        found.append(Import(module, alias.name, "", node.lineno, function))
    return found


def find_cycles(imports: list[Import], modules: dict[str, Path]) -> list[list[Import]]:
    """One closed path of imports per strongly connected group of modules."""
    edges: dict[str, dict[str, Import]] = defaultdict(dict)
    for imp in imports:
        if imp.target in modules and imp.target != imp.source:
            edges[imp.source].setdefault(imp.target, imp)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(modules)))
    try:
        for module in sorted(modules):
            if module not in index:
                connect(module)
    finally:
        sys.setrecursionlimit(limit)
    return [_closed_path(group, edges) for group in groups]


def _closed_path(group: list[str], edges: dict[str, dict[str, Import]]) -> list[Import]:
    """A shortest cycle through the first module of a strongly connected group."""
    start, members = group[0], set(group)
    previous: dict[str, Import] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w, imp in sorted(edges.get(v, {}).items()):
                if w not in members or w in previous:
                    continue
                previous[w] = imp
                if w == start:
                    path, node = [], start
                    while True:
                        path.append(previous[node])
                        node = previous[node].source
                        if node == start:
                            return path[::-1]
                following.append(w)
        frontier = following
    return []


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of the longest prefix naming ``module``."""
    best, best_length = -1, -1
    for number, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = number, len(prefix)
    return best


def _private_module(target: str, source: str) -> str | None:
    """The private module in ``target``'s path that ``source`` reaches from outside."""
    parts = target.split(".")
    for depth, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            package = ".".join(parts[:depth])
            if not (source == package or source.startswith(package + ".")):
                return ".".join(parts[: depth + 1])
    return None


def _known(imp: Import, table: dict[tuple[str, str], str]) -> bool:
    return (imp.source, imp.target) in table


def _graph():
    modules = project_modules()
    return modules, collect_imports(modules)


def _report(title: str, faults: list[str]) -> str:
    return f"{title} ({len(faults)}):\n  " + "\n  ".join(faults)


def test_every_module_is_in_a_layer():
    modules, _ = _graph()
    orphans = [m for m in modules if layer_of(m) < 0]
    assert not orphans, _report("modules in no layer of LAYERS; add them", orphans)


def test_the_import_graph_has_no_cycle():
    modules, imports = _graph()
    cycles = find_cycles(imports, modules)
    faults = [" then ".join(str(imp) for imp in cycle) for cycle in cycles]
    assert not faults, _report("import cycles; move the shared code to a leaf module", faults)


def test_no_function_local_import_between_project_modules():
    _, imports = _graph()
    faults = [str(imp) for imp in imports
              if imp.function and not _known(imp, LOCAL_ALLOWED)]
    assert not faults, _report("function-local imports of the project's modules; move them to "
                               "the module's top (or list them in LOCAL_ALLOWED with a reason)",
                               faults)


def test_no_private_name_is_imported_from_another_module():
    _, imports = _graph()
    faults = []
    for imp in imports:
        if imp.name.startswith("_") and not imp.name.startswith("__"):
            faults.append(f"{imp}: '{imp.name}' is private to {imp.target}")
        private = _private_module(imp.target, imp.source)
        if private:
            faults.append(f"{imp}: {private} is private to its package")
    assert not faults, _report("private names imported across modules; make the helper public "
                               "in a leaf module", faults)


def test_no_module_imports_from_a_higher_layer():
    _, imports = _graph()
    faults = []
    for imp in imports:
        low, high = layer_of(imp.source), layer_of(imp.target)
        if high > low:
            faults.append(f"{imp}: layer '{LAYERS[low][0]}' imports layer '{LAYERS[high][0]}'")
    assert not faults, _report("upward imports; move the shared code down a layer", faults)


def test_the_checks_name_the_faulty_import(tmp_path):
    """A planted cycle, local import, private import and upward import are each reported."""
    package = tmp_path / "bids_app"
    (package / "io").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "io" / "__init__.py").write_text("")
    (package / "io" / "a.py").write_text("from .b import thing\n")
    (package / "io" / "b.py").write_text(
        "def thing():\n    from .a import _secret\n    from bids_app.participant import x\n")
    (package / "participant.py").write_text("x = 1\n")
    (tmp_path / "stimuli_models").mkdir()
    (tmp_path / "stimuli_models" / "__init__.py").write_text("")
    modules = project_modules(tmp_path)
    imports = collect_imports(modules)
    cycles = find_cycles(imports, modules)
    assert [[str(i) for i in c] for c in cycles] == [[
        "bids_app.io.a:1 imports bids_app.io.b (thing)",
        "bids_app.io.b:2 imports bids_app.io.a (_secret) inside thing()"]]
    local = sorted(str(i) for i in imports if i.function)
    assert local == ["bids_app.io.b:2 imports bids_app.io.a (_secret) inside thing()",
                     "bids_app.io.b:3 imports bids_app.participant (x) inside thing()"]
    upward = [i for i in imports if layer_of(i.target) > layer_of(i.source)]
    assert [i.target for i in upward] == ["bids_app.participant"]
    assert _private_module("bids_app.io._common", "bids_app.io.x") is None
    assert _private_module("bids_app.io._common", "bids_app.plan") == "bids_app.io._common"


def test_featurize_is_the_public_function_not_a_module():
    """``stimuli_models.featurize`` names the public function; no module shadows it."""
    import importlib.util

    import stimuli_models
    from stimuli_models import featurize
    from stimuli_models.word_features import featurize_words

    assert featurize is featurize_words is stimuli_models.featurize
    assert importlib.util.find_spec("stimuli_models.featurize") is None
    assert "featurize" in stimuli_models.__all__


if __name__ == "__main__":
    found_modules, found_imports = _graph()
    local_count = sum(1 for i in found_imports if i.function)
    print(f"{len(found_modules)} modules, {len(found_imports)} internal imports, "
          f"{local_count} function-local")
    for found_cycle in find_cycles(found_imports, found_modules):
        print("cycle:", " -> ".join(str(i) for i in found_cycle))
