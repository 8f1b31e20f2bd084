"""The import graph of a Python package, read with `ast` (nothing is imported).

Shared by tools/gen_build.py (Bazel deps) and tests/test_architecture.py
(cycles and layering). The semantics are those of
/work/shared/tools/import_graph.py:

  * module-level and function-level `import` / `from ... import` count (a
    lazy import is still a tie);
  * relative imports are resolved against the importing module;
  * `from m import x` imports m, and m.x too when x is a submodule;
  * an imported name resolves to the longest dotted prefix that is a module
    of the package;
  * an edge from a module to itself or to one of its ancestor packages'
    `__init__` is not counted (a package importing its children is fine).

Example:
  graph = build_graph("tf_compress")
  for edge in graph.edges["tf_compress.pruning.magnitude"]:
    print(edge.path, edge.line, edge.target)
"""

import ast
import collections
import pathlib

# One import: `source` imports `name` (absolute, as written) at path:line;
# `target` is the module of the package that `name` resolves to.
Edge = collections.namedtuple("Edge", "source target name path line")
Graph = collections.namedtuple("Graph", "package root modules edges")


def find_modules(package_dir):
  """Maps the dotted name of every .py module under package_dir to its path.

  Args:
    package_dir: the package's directory (its base name is the package name).

  Returns:
    A dict, sorted by name; `pkg/sub/__init__.py` is named `pkg.sub`.
  """
  package_dir = pathlib.Path(package_dir)
  out = {}
  for path in sorted(package_dir.rglob("*.py")):
    parts = path.relative_to(package_dir.parent).with_suffix("").parts
    if parts[-1] == "__init__":
      parts = parts[:-1]
    out[".".join(parts)] = path
  return out


def is_main_guard(node):
  """Whether `node` is `if __name__ == "__main__":` (either way round)."""
  if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
    return False
  test = node.test
  if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
    return False
  sides = [test.left, test.comparators[0]]
  return (any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
          and any(isinstance(s, ast.Constant) and s.value == "__main__"
                  for s in sides))


def _dynamic_name(node):
  """The module of `runpy.run_module("m")` / `importlib.import_module("m")`."""
  func = node.func
  if (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and
      (func.value.id, func.attr) in (("runpy", "run_module"),
                                     ("importlib", "import_module")) and
      node.args and isinstance(node.args[0], ast.Constant) and
      isinstance(node.args[0].value, str)):
    return node.args[0].value
  return None


def imported_names(path, module=None, dynamic=False):
  """Lists what a file imports, as absolute dotted names.

  Args:
    path: the .py file.
    module: its dotted module name, to resolve relative imports (they are
      skipped when None).
    dynamic: also count `runpy.run_module("m")` and
      `importlib.import_module("m")` with a constant name (for Bazel, which
      must ship what runs; not an import for the architecture).

  Returns:
    Sorted (line, name) pairs; `from m import x` gives both m and m.x.
  """
  path = pathlib.Path(path)
  tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
  base = None
  if module is not None:
    base = module.split(".")
    if path.name != "__init__.py":
      base = base[:-1]
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out.update((node.lineno, alias.name) for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        if base is None or node.level - 1 > len(base):
          continue
        parts = base[:len(base) - (node.level - 1)]
        name = ".".join(parts + ([node.module] if node.module else []))
      else:
        name = node.module or ""
      out.add((node.lineno, name))
      out.update((node.lineno, name + "." + alias.name)
                 for alias in node.names if alias.name != "*")
    elif dynamic and isinstance(node, ast.Call) and _dynamic_name(node):
      out.add((node.lineno, _dynamic_name(node)))
  return sorted(out)


def resolve(name, modules):
  """The longest dotted prefix of `name` in `modules`, or None."""
  while name and name not in modules:
    name = name.rpartition(".")[0]
  return name or None


def build_graph(package_dir, dynamic=False):
  """Reads the import graph of the package in package_dir.

  Args:
    package_dir: the package's directory.
    dynamic: see imported_names().

  Returns:
    A Graph: `modules` maps names to paths; `edges` maps every module to the
    list of its Edges, sorted by line (one per line and target), without
    edges to itself or to its ancestors.
  """
  package_dir = pathlib.Path(package_dir)
  modules = find_modules(package_dir)
  edges = {}
  for source, path in modules.items():
    found = {}
    for line, name in imported_names(path, source, dynamic):
      target = resolve(name, modules)
      if target and target != source and not source.startswith(target + "."):
        found.setdefault((line, target), Edge(source, target, name, path,
                                              line))
    edges[source] = [found[key] for key in sorted(found)]
  return Graph(package_dir.name, package_dir.parent, modules, edges)


def strongly_connected(successors):
  """Tarjan's strongly connected components of a graph.

  Args:
    successors: a dict mapping each node to an iterable of nodes.

  Returns:
    The components with more than one node, each sorted, in sorted order.
  """
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for succ in sorted(successors.get(node, ())):
      if succ not in index:
        visit(succ)
        low[node] = min(low[node], low[succ])
      elif succ in on_stack:
        low[node] = min(low[node], index[succ])
    if low[node] == index[node]:
      component = []
      while True:
        succ = stack.pop()
        on_stack.discard(succ)
        component.append(succ)
        if succ == node:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for node in sorted(successors):
    if node not in index:
      visit(node)
  return sorted(found)
