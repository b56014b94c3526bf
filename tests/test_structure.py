"""Guards against regrowth: function length, import cycles, upward imports, literal CLI defaults.

Reads the package's source with :mod:`ast` (nothing is imported or run): sdk/ (``facelm``),
converters/, quantization/, android_bench/ and cli/. Scripts under benchmarks/ are not part
of the package and are not read.
"""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: source folder -> import name of the package it holds
PACKAGES = {"sdk": "facelm", "converters": "facelm.converters", "quantization": "facelm.quantization",
            "android_bench": "facelm.android_bench", "cli": "facelm.cli"}
MAX_FUNCTION_LINES = 80
#: Programs that are not library code: each runs as its own process (often under the emulated
#: aarch64 python, without facelm), mimicking a tool's whole command line in one main().
STAND_INS = {
    "android_bench/virtual_device/benchmark_model.py": "stand-in for TFLite's benchmark_model binary",
    "sdk/arm64/_batch_worker.py": "the script the emulated aarch64 python runs",
}
#: (file, function) allowed over MAX_FUNCTION_LINES, each with why it is not split (yet).
LONG_FUNCTION_EXEMPTIONS: dict[tuple[str, str], str] = {
}
#: Import cycles between files that close only through imports inside functions, each with
#: why it stays; any other cycle fails. Sorted module names of each cycle (strongly connected set).
KNOWN_FUNCTION_IMPORT_CYCLES: dict[tuple[str, ...], str] = {
    ("facelm.quantization.debug", "facelm.quantization.mixed"): "the --keep-float search (mixed) calibrates, "
    "quantizes and scores layers with debug's tools, and debug's report renders the search (mixed.render_search); "
    "the quantization owner's split in issue 22 (chain no longer imports debug) left this pair",
}


@lru_cache(maxsize=None)
def modules() -> dict[str, Path]:
    """Import name -> source file of every module of the package."""
    out = {}
    for folder, package in PACKAGES.items():
        for f in sorted((REPO / folder).rglob("*.py")):
            parts = list(f.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = f
    return out


_TREES: dict[str, ast.Module] = {}


def tree(name: str) -> ast.Module:
    """The parsed source of module ``name`` (parsed once per session)."""
    if name not in _TREES:
        _TREES[name] = ast.parse(modules()[name].read_text(encoding="utf-8"), filename=str(modules()[name]))
    return _TREES[name]


def rel(name: str) -> str:
    return modules()[name].relative_to(REPO).as_posix()


def is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


@lru_cache(maxsize=None)
def bound_names(package: str) -> frozenset[str]:
    """Names a package's ``__init__`` binds itself (so ``from package import x`` is not a submodule)."""
    names = set()
    for n in ast.walk(tree(package)):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(n.name)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            names.add(n.id)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in n.names)
    return frozenset(names)


def targets(name: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Modules of the package an import statement in module ``name`` loads by name."""
    if isinstance(node, ast.Import):
        found = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            here = name.split(".") if is_package(name) else name.split(".")[:-1]
            here = here[:len(here) - (node.level - 1)]
            base = ".".join(here + ([node.module] if node.module else []))
        found = []
        for a in node.names:
            sub = f"{base}.{a.name}"
            submodule = sub in modules() or (base in modules() and is_package(base)
                                              and a.name not in bound_names(base))
            found.append(sub if submodule else base)  # a compiled submodule (_cdark) counts as one too
    return [t for t in found if t in modules() and t != name]


def imports(name: str, inside_functions: bool) -> list[tuple[str, int]]:
    """(target module, line) of the module's imports: those run at import time (module body,
    its if/try/with blocks and class bodies), plus those inside functions when asked."""
    out = []
    stack: list[ast.AST] = list(tree(name).body)
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.Import, ast.ImportFrom)):
            out += [(t, n.lineno) for t in targets(name, n)]
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and not inside_functions:
            continue
        else:
            stack.extend(ast.iter_child_nodes(n))
    return out


def cycles(inside_functions: bool) -> list[tuple[str, ...]]:
    """Strongly connected sets of more than one module in the import graph (Tarjan)."""
    graph = {m: sorted({t for t, _ in imports(m, inside_functions)}) for m in modules()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(tuple(sorted(comp)))

    for v in graph:
        if v not in index:
            visit(v)
    return sorted(found)


def long_functions() -> dict[tuple[str, str], int]:
    """(file, qualified function name) -> lines (``def`` to last line) of every function over the limit."""
    out = {}
    for name in modules():
        if rel(name) in STAND_INS:
            continue

        def walk(node: ast.AST, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    qual = prefix + child.name
                    lines = child.end_lineno - child.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        out[(rel(name), qual)] = lines
                    walk(child, qual + ".")
                elif isinstance(child, ast.ClassDef):
                    walk(child, prefix + child.name + ".")
                else:
                    walk(child, prefix)

        walk(tree(name), "")
    return out


# ----------------------------------------------------------------------------------- the guards
def test_the_walk_sees_the_package():
    names = modules()
    assert {"facelm.layouts", "facelm.codec.core", "facelm.converters.tflite", "facelm.quantization.drift",
            "facelm.android_bench.runners", "facelm.cli.app"} <= set(names)
    assert len(names) > 100
    for path in STAND_INS:
        assert (REPO / path).is_file(), path


def test_no_library_function_is_longer_than_80_lines():
    found = long_functions()
    new = {k: v for k, v in found.items() if k not in LONG_FUNCTION_EXEMPTIONS}
    assert not new, "split these (or list them with a reason): " + ", ".join(
        f"{f}:{fn} ({n} lines)" for (f, fn), n in sorted(new.items()))
    stale = set(LONG_FUNCTION_EXEMPTIONS) - set(found)
    assert not stale, f"no longer over {MAX_FUNCTION_LINES} lines, remove the exemption: {sorted(stale)}"


def test_no_import_cycle_through_module_level_imports():
    assert cycles(inside_functions=False) == []


def test_no_new_import_cycle_through_imports_inside_functions():
    """An import moved into a function only hides a cycle between two files; none may be added."""
    found = cycles(inside_functions=True)
    new = [c for c in found if c not in KNOWN_FUNCTION_IMPORT_CYCLES]
    assert not new, f"file import cycles: {new}"
    stale = set(KNOWN_FUNCTION_IMPORT_CYCLES) - set(found)
    assert not stale, f"these cycles are gone, remove them from KNOWN_FUNCTION_IMPORT_CYCLES: {sorted(stale)}"


def test_the_library_never_imports_the_cli():
    upward = [f"{rel(m)}:{line} imports {t}" for m in modules() if not m.startswith("facelm.cli")
              for t, line in imports(m, inside_functions=True) if t == "facelm.cli" or t.startswith("facelm.cli.")]
    assert upward == []


def test_cli_flag_defaults_are_never_literals():
    """Flag defaults come from the config dataclasses or the API's keywords (docs/architecture.md);
    the only literal allowed is the empty list of a repeatable (``append``) flag."""
    literal = []
    for name in modules():
        if not name.startswith("facelm.cli"):
            continue
        for n in ast.walk(tree(name)):
            if not (isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "add_argument"):
                continue
            kw = {k.arg: k.value for k in n.keywords}
            default = kw.get("default")
            if default is None or (isinstance(default, ast.Constant) and default.value is None):
                continue
            appends = isinstance(kw.get("action"), ast.Constant) and kw["action"].value == "append"
            if isinstance(default, ast.List) and not default.elts and appends:
                continue
            if isinstance(default, (ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.Set)):
                literal.append(f"{rel(name)}:{n.lineno} {ast.unparse(n.args[0]) if n.args else ''} "
                               f"default={ast.unparse(default)}")
    assert literal == []


# ------------------------------------------------------------------- the guards can fail
def test_guards_catch_a_long_function_an_upward_import_and_a_hidden_cycle(monkeypatch):
    """A probe module (never written to disk) with a long function and an import of the CLI;
    and facelm.errors made to import facelm.layouts (which imports it) inside a function."""
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    probe = "facelm.structure_probe"
    monkeypatch.setitem(modules(), probe, REPO / "sdk" / "structure_probe.py")
    monkeypatch.setitem(_TREES, probe, ast.parse(f"from facelm.cli.app import main\n\ndef long():\n{body}\n\n\n"
                                                 "def short():\n    import facelm.layouts\n"))
    found = long_functions()
    assert found[("sdk/structure_probe.py", "long")] == MAX_FUNCTION_LINES + 1
    assert ("sdk/structure_probe.py", "short") not in found
    with pytest.raises(AssertionError, match="structure_probe.py:1 imports facelm.cli.app"):
        test_the_library_never_imports_the_cli()
    hidden = ast.parse(_read(modules()["facelm.errors"]) + "\n\ndef _probe():\n    import facelm.layouts\n")
    monkeypatch.setitem(_TREES, "facelm.errors", hidden)
    assert ("facelm.errors", "facelm.layouts") in cycles(inside_functions=True)
    assert ("facelm.errors", "facelm.layouts") not in cycles(inside_functions=False)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_literal_cli_default_is_caught(monkeypatch):
    probe = "facelm.cli.structure_probe"
    monkeypatch.setitem(modules(), probe, REPO / "cli" / "structure_probe.py")
    monkeypatch.setitem(_TREES, probe, ast.parse(
        "def register(p):\n    p.add_argument('--runs', type=int, default=3)\n"
        "    p.add_argument('--connect', action='append', default=[])\n    p.add_argument('--out', default=None)\n"))
    with pytest.raises(AssertionError, match=r"structure_probe.py:2 '--runs' default=3"):
        test_cli_flag_defaults_are_never_literals()
