"""Check the package's shape: the layer order of its modules, import cycles, imports hidden inside functions, long
functions.

    python tools/check_structure.py [--max-lines 80] [--src src/audiomnist]

Reads the source with `ast` (nothing is imported). Every `import` of a project module counts, at module level,
inside a function or under `if TYPE_CHECKING:` alike, so a cycle cannot hide behind a lazy import. So does
`importlib.import_module(NAME)` with NAME a string literal or a module-level string constant naming a project module
(infer loads its torch side that way, so .onnx models never import torch): it is allowed, but it is an edge, so it
may not close a cycle nor point up the layers. A module may import only modules before it in LAYERS (the README's
"Pipeline" order); a module missing from LAYERS is a problem too, so a new one gets placed on purpose. Prints what it
finds and exits 1 on any problem.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGE = "audiomnist"

# Lowest first. The models package counts as one module (its networks register themselves into it).
LAYERS = """
    __init__ errors paths config distributed allocator splits
    sources decode catalog download synth
    audio tempo ctc onnx_model placement cache speech_embedding features augment strings models
    runconfig checkpoint string_model dataset report evaluate train train_strings cv demo
    analyze_quality analyze_result analyze_figures analyze_html analyze
    web_export export torch_infer infer recognizer stream string_stream listen serve cli
""".split()


def layer(module: str) -> int | None:
    """Position of a module in LAYERS (models.* as models), None when it is not listed."""
    parts = module.split(".")[1:] or ["__init__"]
    name = "models" if parts[0] == "models" else parts[0]
    return LAYERS.index(name) if name in LAYERS else None


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(node: ast.ImportFrom, current: str, is_package: bool) -> list[str]:
    """Absolute module names an ImportFrom refers to (each `from . import x` name may itself be a module)."""
    if node.level:
        base = current.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [prefix] + [f"{prefix}.{a.name}" for a in node.names]


def imports_of(tree: ast.Module, name: str, is_package: bool, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported project module, line, inside a function) for every import statement in the tree."""
    found: list[tuple[str, int, bool]] = []
    constants = {
        t.id: n.value.value
        for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
        for t in n.targets
        if isinstance(t, ast.Name)
    }

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            targets: list[str] = []
            named = dynamic_import(child, constants)
            if named in known and named != name:
                found.append((named, child.lineno, False))  # an edge for the cycle check, not a hidden import
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                targets = resolve(child, name, is_package)
                # `from . import x` imports the submodule x, not the package's __init__.
                submodules = [t for t in targets[1:] if t in known]
                targets = submodules or targets[:1]
            for t in targets:
                if t in known and t != name:
                    found.append((t, child.lineno, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


def dynamic_import(node: ast.AST, constants: dict[str, str]) -> str | None:
    """The module an `importlib.import_module(...)` call names by a literal or a module-level constant, else None."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if called != "import_module":
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return constants.get(arg.id) if isinstance(arg, ast.Name) else None


def long_functions(tree: ast.Module, limit: int) -> list[tuple[str, int, int]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                out.append((node.name, node.lineno, length))
    return out


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each a set of modules importing in a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strongconnect(w)
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
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return components


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--src", type=Path, default=Path(__file__).resolve().parents[1] / "src" / PACKAGE, help="the package folder"
    )
    ap.add_argument("--max-lines", type=int, default=80, help="longest function allowed, in lines")
    args = ap.parse_args(argv)
    files = sorted(args.src.rglob("*.py"))
    trees = {module_name(f, args.src): (f, ast.parse(f.read_text(), str(f))) for f in files}
    known = set(trees)
    graph: dict[str, set[str]] = {m: set() for m in known}
    problems = 0
    # A package's own __init__ importing its submodules is how it registers them, not a layering choice.
    for mod, (path, tree) in sorted(trees.items()):
        if layer(mod) is None:
            print(f"{path}: {mod} is not in LAYERS: add it where it belongs")
            problems += 1
        for target, line, in_function in imports_of(tree, mod, path.name == "__init__.py", known):
            if target.startswith(mod + ".") and path.name == "__init__.py":
                continue
            graph[mod].add(target)
            here, there = layer(mod), layer(target)
            if here is not None and there is not None and there > here:
                print(f"{path}:{line}: {mod} imports {target}, which comes after it in LAYERS")
                problems += 1
            if in_function:
                print(f"{path}:{line}: function-level import of {target}")
                problems += 1
        for fn, line, length in long_functions(tree, args.max_lines):
            print(f"{path}:{line}: {fn} is {length} lines (> {args.max_lines})")
            problems += 1
    for cycle in find_cycles(graph):
        print("import cycle: " + " <-> ".join(cycle))
        problems += 1
    print(f"{len(files)} modules, {sum(len(v) for v in graph.values())} project imports, {problems} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
