"""The house's shape, kept true: an AST walk of every import of `broadcast/` and `signaling/`
(type-only imports included). No import loop; the media plane never imports HTTP or the
control plane; the relay core never imports aiortc; few loose modules beside the subsystem
packages; no file over 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("broadcast", "signaling")
MAX_LOOSE = 12
MAX_LINES = 600


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of ours that `name` imports, anywhere in the file (TYPE_CHECKING too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            # `from broadcast.relay import stream` names a module; `import a.b.c` imports a and a.b too
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def third_party(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    # a package's __init__ re-exporting its modules is not a loop of the code it names
    return {name: {t for t in imports_of(name, path, known) if not name.startswith(t + ".")}
            for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_loop_type_only_imports_included() -> None:
    loops = cycles(graph())
    assert not loops, "import loops: " + "; ".join(" ↔ ".join(c) for c in loops)


def test_the_media_plane_knows_nothing_of_http_and_the_relay_nothing_of_aiortc() -> None:
    found = modules()
    for name, path in found.items():
        libs = third_party(path)
        if name.startswith("broadcast"):
            assert not libs & {"aiohttp", "signaling"}, f"{name} imports {libs & {'aiohttp', 'signaling'}}"
        if name.startswith("broadcast.relay"):
            ours = imports_of(name, path, set(found))
            assert "aiortc" not in libs and "aioice" not in libs, f"{name} imports aiortc"
            assert not {m for m in ours if m.startswith("broadcast.webrtc")}, f"{name} imports the aiortc adapter"


def test_few_loose_modules_and_no_long_files() -> None:
    for package in PACKAGES:
        loose = [p.name for p in (ROOT / package).glob("*.py") if p.name != "__init__.py"]
        assert len(loose) <= MAX_LOOSE, f"{package}/ has {len(loose)} loose modules: {sorted(loose)}"
    long = {str(p.relative_to(ROOT)): n for p in modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines: {long}"
