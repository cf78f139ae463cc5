"""Which modules of the package a module runs, read from its import statements.

The workflow fingerprints the code of each stage with :class:`PackageCode`: the stage's module
and every package module it imports, directly or through other package modules, found with
``ast`` (no code is run). An import anywhere in a module counts: at the top, inside a function,
under ``if TYPE_CHECKING``, relative or absolute, and ``importlib.import_module`` with a literal
name. So a module that a stage starts to import is part of its fingerprint without anyone
listing it, and an edit to a module that a stage does not import does not rerun the stage.

The fingerprint hashes each module's syntax tree (``ast.dump`` without line numbers), so
comments and formatting do not count; docstrings do.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path


class ImportProblem(ValueError):
    """A package module imports a package module that does not exist."""


class PackageCode:
    """The modules of ``package`` under ``root`` (the folder holding the package folder).

    Each module is read and parsed at most once per instance, however many fingerprints use it:
    the workflow makes one instance per Snakefile parse.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        package: str = "thne",
        cache: str | os.PathLike | None = None,
    ) -> None:
        self.root = Path(root)
        self.package = package
        self._trees: dict[str, ast.Module] = {}
        self._imports: dict[str, frozenset[str]] = {}
        self._digests: dict[str, bytes] = {}
        self._paths: dict[str, Path | None] = {}
        # What parsing a module gives (its tree's digest and its import statements), by the
        # module's name and the hash of its bytes: parsing is most of a workflow parse's time,
        # and every job parses the workflow. A file that changes gets a new entry.
        self._cache_path = Path(cache) if cache else None
        self._cache: dict[str, dict] = {}
        self._parses: dict[str, dict] = {}
        self._new = 0
        if self._cache_path is not None:
            try:
                self._cache = json.loads(self._cache_path.read_text())
            except (OSError, ValueError):
                self._cache = {}

    def path(self, module: str) -> Path | None:
        """The file of ``module`` (dotted name), or None when there is none."""
        if module not in self._paths:
            base = self.root.joinpath(*module.split("."))
            candidates = (base.with_suffix(".py"), base / "__init__.py")
            self._paths[module] = next((c for c in candidates if c.is_file()), None)
        return self._paths[module]

    def modules(self) -> list[str]:
        """Every module of the package, by dotted name, sorted."""
        names = []
        for path in sorted((self.root / self.package).rglob("*.py")):
            parts = path.relative_to(self.root).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        return sorted(names)

    def _tree(self, module: str) -> ast.Module:
        if module not in self._trees:
            path = self.path(module)
            if path is None:
                raise ImportProblem(f"no module {module} under {self.root}")
            self._trees[module] = ast.parse(path.read_text(), filename=str(path))
        return self._trees[module]

    def imports(self, module: str) -> frozenset[str]:
        """The package modules that ``module`` imports itself (not through others)."""
        if module in self._imports:
            return self._imports[module]
        found: set[str] = set()
        for target, names, line in self._parsed(module)["statements"]:
            found |= self._resolve(target, names, module, line)
        found.discard(module)
        self._imports[module] = frozenset(found)
        return self._imports[module]

    def _parsed(self, module: str) -> dict:
        """``module``'s tree digest (hex) and import statements, [target, names, line] with
        relative imports made absolute: from the cache, else parsed."""
        if module in self._parses:
            return self._parses[module]
        path = self.path(module)
        if path is None:
            raise ImportProblem(f"no module {module} under {self.root}")
        key = f"{module}\0{hashlib.sha256(path.read_bytes()).hexdigest()}"
        if key not in self._cache:
            tree = self._tree(module)
            dumped = ast.dump(tree, include_attributes=False)
            self._cache[key] = {
                "digest": hashlib.sha256(dumped.encode()).hexdigest(),
                "statements": self._statements(module, tree),
            }
            self._new += 1
        self._parses[module] = self._cache[key]
        return self._parses[module]

    def _statements(self, module: str, tree: ast.Module) -> list:
        path = self.path(module)
        is_package = path is not None and path.name == "__init__.py"
        # The package a relative import starts from.
        here = module if is_package else module.rpartition(".")[0]
        statements = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                statements += [[alias.name, [], node.lineno] for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = here.split(".")
                    if node.level - 1 >= len(parts):
                        raise ImportProblem(
                            f"{path}:{node.lineno}: relative import above the package"
                        )
                    base = ".".join(parts[: len(parts) - (node.level - 1)])
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                names = [a.name for a in node.names if a.name != "*"]
                statements.append([target, names, node.lineno])
            elif _is_import_module_call(node):
                statements.append([node.args[0].value, [], node.lineno])
        return statements

    def save(self) -> None:
        """Write the cache, if there is one and it gained entries (atomically: the jobs of a
        run parse the workflow at once)."""
        if self._cache_path is None or not self._new:
            return
        try:
            self._cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._cache_path.with_name(f"{self._cache_path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self._cache))
            os.replace(tmp, self._cache_path)
            self._new = 0
        except OSError:
            pass  # a read-only folder: the next parse parses again

    def _resolve(self, target: str, names: Iterable[str], module: str, line: int) -> set[str]:
        """Package modules named by ``import target`` or ``from target import names``: a name
        that is a submodule counts as that submodule, any other name as ``target`` itself."""
        if target != self.package and not target.startswith(self.package + "."):
            return set()
        if self.path(target) is None:
            raise ImportProblem(
                f"{self.path(module)}:{line}: imports {target}, "
                "which is not a module of the package"
            )
        found = set()
        for name in names:
            if self.path(f"{target}.{name}") is not None:
                found.add(f"{target}.{name}")
            else:
                found.add(target)
        return found or {target}

    def closure(self, module: str) -> list[str]:
        """``module`` and every package module it runs, sorted: its imports, their imports and
        so on, and the ``__init__`` of every package on the way (importing ``a.b.c`` runs
        ``a`` and ``a.b`` first)."""
        seen: set[str] = set()
        todo = [module]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            parts = name.split(".")
            todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
            todo.extend(self.imports(name))
        return sorted(seen)

    def digest(self, module: str) -> bytes:
        """Hash of ``module``'s syntax tree: the same for any comment or formatting edit."""
        if module not in self._digests:
            self._digests[module] = bytes.fromhex(self._parsed(module)["digest"])
        return self._digests[module]

    def fingerprint(self, module: str, extra_files: Iterable[str] = ()) -> str:
        """16 hex digits that change when the code ``module`` runs changes.

        ``extra_files`` (paths under ``root``) are non-Python files that code runs, hashed byte
        for byte.
        """
        h = hashlib.sha256()
        for name in self.closure(module):
            h.update(name.encode() + b"\0" + self.digest(name))
        _hash_files(h, self.root, extra_files)
        self.save()
        return h.hexdigest()[:16]

    def fingerprint_files(self, files: Iterable[str]) -> str:
        """16 hex digits that change when any of ``files`` (paths under ``root``) changes."""
        h = hashlib.sha256()
        _hash_files(h, self.root, files)
        return h.hexdigest()[:16]

    def graph(self) -> dict[str, frozenset[str]]:
        """Every module of the package and the package modules it imports itself."""
        return {name: self.imports(name) for name in self.modules()}


def _hash_files(h: hashlib._Hash, root: Path, files: Iterable[str]) -> None:
    for rel in sorted(files):
        h.update(rel.encode() + b"\0" + hashlib.sha256((root / rel).read_bytes()).digest())


def _is_import_module_call(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Call) and node.args):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    first = node.args[0]
    return (
        name == "import_module" and isinstance(first, ast.Constant) and isinstance(first.value, str)
    )


def import_cycles(graph: dict[str, Iterable[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: each a list of modules that import one another in a
    circle (strongly connected components of more than one module), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    # Tarjan's algorithm, iterative so a deep import chain cannot exhaust the recursion limit.
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return sorted(cycles)
