"""The architecture of tf_compress, read from its imports (nothing imported).

The import graph comes from tools/module_graph.py (the semantics of
/work/shared/tools/import_graph.py: lazy imports count, relative imports are
resolved, an import of a module's own ancestor package is not an edge). On
the real package: no cycle between modules, no cycle between top-level
subpackages, no library module importing tf_compress.pipeline or
tf_compress.cli, and no two modules with the same base name. Each check is
also run on synthetic packages that must fail it, and on one that passes.
"""

import ast
import collections
import functools
import os
import pathlib
import sys
import textwrap

import pytest

REPO = pathlib.Path(os.path.realpath(__file__)).parents[1]
sys.path.insert(0, str(REPO / "tools"))
import module_graph  # pylint: disable=g-import-not-at-top

PACKAGE_DIR = REPO / "tf_compress"
UPPER_LAYERS = ("pipeline", "cli")  # imported by no library module


def _where(graph, edge):
  return "%s:%d" % (edge.path.relative_to(graph.root).as_posix(), edge.line)


def _describe(graph, edge):
  return "  %s: %s imports %s" % (_where(graph, edge), edge.source,
                                  edge.target)


def _one_per_line(edges):
  """The deepest target of each import line (`from a import b`: a.b)."""
  best = {}
  for edge in edges:
    key = (edge.path, edge.line)
    if key not in best or len(edge.target) > len(best[key].target):
      best[key] = edge
  return [best[key] for key in sorted(best)]


def module_cycles(graph):
  """One message per strongly connected set of modules, with its imports."""
  successors = {m: {e.target for e in es} for m, es in graph.edges.items()}
  out = []
  for component in module_graph.strongly_connected(successors):
    inside = set(component)
    lines = [_describe(graph, e) for e in _one_per_line(
        e for m in component for e in graph.edges[m] if e.target in inside)]
    out.append("import cycle between %s:\n%s" % (", ".join(component),
                                                 "\n".join(lines)))
  return out


def _unit(graph, module):
  """tf_compress.X for any module under X (X a subpackage or a module)."""
  return ".".join(module.split(".")[:2])


def package_cycles(graph):
  """One message per cycle between top-level subpackages.

  Each names an import of each direction; the package root's imports do not
  count (it re-exports everything).
  """
  examples = {}
  for module, edges in graph.edges.items():
    for edge in edges:
      pair = (_unit(graph, module), _unit(graph, edge.target))
      if pair[0] != pair[1] and graph.package not in pair:
        examples.setdefault(pair, edge)
  successors = collections.defaultdict(set)
  for a, b in examples:
    successors[a].add(b)
  out = []
  for component in module_graph.strongly_connected(successors):
    lines = [_describe(graph, examples[(a, b)]) for a in component
             for b in component if (a, b) in examples]
    out.append("package cycle between %s:\n%s" % (" <-> ".join(component),
                                                  "\n".join(lines)))
  return out


def _under(module, packages):
  return any(module == p or module.startswith(p + ".") for p in packages)


def upward_imports(graph):
  """Imports of the upper layers (pipeline, cli) from library modules."""
  upper = ["%s.%s" % (graph.package, layer) for layer in UPPER_LAYERS]
  exempt = {graph.package, graph.package + ".__main__"}  # root, `python -m`
  edges = _one_per_line(e for m, es in graph.edges.items()
                        if not _under(m, upper) and m not in exempt
                        for e in es if _under(e.target, upper))
  return ["%s: library module %s imports %s (only %s may)" % (
      _where(graph, e), e.source, e.target, " and ".join(upper))
          for e in edges]


def is_cli_alias(path, package):
  """Whether a top-level module only does `runpy.run_module(<cli module>)`.

  The alias keeps `python -m tf_compress.train` working: a docstring,
  `import runpy`, and an `if __name__ == "__main__":` block that calls
  `runpy.run_module("tf_compress.cli.train", ...)` -- nothing else.
  """
  body = ast.parse(path.read_text(encoding="utf-8")).body
  if body and isinstance(body[0], ast.Expr) and isinstance(
      body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
    body = body[1:]
  if len(body) != 2 or ast.dump(body[0]) != ast.dump(
      ast.parse("import runpy").body[0]):
    return False
  guard = body[1]
  if not module_graph.is_main_guard(guard) or guard.orelse:
    return False
  target = "%s.cli.%s" % (package, path.stem)
  return all(
      isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) and
      ast.unparse(s.value.func) == "runpy.run_module" and s.value.args and
      isinstance(s.value.args[0], ast.Constant) and
      s.value.args[0].value == target for s in guard.body)


def duplicate_names(graph):
  """Modules sharing a base name (not __init__/__main__ or cli aliases)."""
  by_name = collections.defaultdict(list)
  for path in graph.modules.values():
    if path.name in ("__init__.py", "__main__.py"):
      continue
    if path.parent == graph.root / graph.package and is_cli_alias(
        path, graph.package):
      continue
    by_name[path.stem].append(path.relative_to(graph.root).as_posix())
  return ["%d modules are named %r: %s" % (len(paths), name,
                                           ", ".join(sorted(paths)))
          for name, paths in sorted(by_name.items()) if len(paths) > 1]


CHECKS = {"module_cycles": module_cycles, "package_cycles": package_cycles,
          "upward_imports": upward_imports,
          "duplicate_names": duplicate_names}


# The real package. -----------------------------------------------------------


@functools.lru_cache(maxsize=None)
def real_graph():
  return module_graph.build_graph(PACKAGE_DIR)


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_the_package_passes(check):
  violations = CHECKS[check](real_graph())
  assert not violations, "\n".join(violations)


def test_the_real_graph_is_read():
  graph = module_graph.build_graph(PACKAGE_DIR)
  assert graph.package == "tf_compress"
  assert "tf_compress._keras" in graph.modules
  assert sum(len(es) for es in graph.edges.values()) > len(graph.modules)


# Synthetic packages. ---------------------------------------------------------

ALIAS = '''\
"""`python -m pkg.train`: runs `pkg.cli.train`."""

import runpy

if __name__ == "__main__":
  runpy.run_module("pkg.cli.train", run_name="__main__", alter_sys=True)
'''

# Layers cli -> pipeline -> prune -> _base; the root re-exports, an alias.
CLEAN = {
    "pkg/__init__.py": "from pkg.prune import magnitude\nimport pkg.pipeline\n",
    "pkg/_base.py": "import os\n",
    "pkg/prune/__init__.py": "from . import magnitude\n"
                             "from .magnitude import f\n",
    "pkg/prune/magnitude.py": "from pkg import _base\nimport pkg.prune\n"
                              "from ..prune import schedules\n",
    "pkg/prune/schedules.py": "def f():\n  from pkg import _base\n",
    "pkg/pipeline/__init__.py": "",
    "pkg/pipeline/run.py": "from pkg.prune import magnitude\n",
    "pkg/cli/__init__.py": "",
    "pkg/cli/train.py": "from pkg.pipeline import run\n",
    "pkg/train.py": ALIAS,
}


def make_graph(tmp_path, files, base=CLEAN):
  merged = dict(base)
  merged.update(files)
  for rel, text in merged.items():
    if text is None:
      continue
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
  return module_graph.build_graph(tmp_path / "pkg")


def test_clean_package_passes_every_check(tmp_path):
  graph = make_graph(tmp_path, {})
  for name, check in sorted(CHECKS.items()):
    assert check(graph) == [], name


def test_graph_semantics(tmp_path):
  graph = make_graph(tmp_path, {})
  targets = {m: sorted({e.target for e in es})
             for m, es in graph.edges.items()}
  # Relative imports resolve; `from pkg import _base` is the submodule; the
  # ancestors (pkg, pkg.prune) are not edges; lazy imports count.
  assert targets["pkg.prune.magnitude"] == ["pkg._base",
                                            "pkg.prune.schedules"]
  assert targets["pkg.prune.schedules"] == ["pkg._base"]
  assert targets["pkg.prune"] == ["pkg.prune.magnitude"]
  assert targets["pkg"] == ["pkg.pipeline", "pkg.prune",
                            "pkg.prune.magnitude"]
  assert targets["pkg.train"] == []  # runpy.run_module is no import
  edge = graph.edges["pkg.prune.magnitude"][0]
  assert (edge.path.name, edge.line) == ("magnitude.py", 1)


CASES = {
    "two_module_cycle": ("module_cycles", {
        "pkg/prune/a.py": "from pkg.prune import b\n",
        "pkg/prune/b.py": "import os\nimport pkg.prune.a\n",
    }, ["pkg.prune.a, pkg.prune.b", "pkg/prune/a.py:1", "pkg/prune/b.py:2"]),
    "lazy_import_cycle": ("module_cycles", {
        "pkg/prune/a.py": "from . import b\n",
        "pkg/prune/b.py": "def later():\n  from pkg.prune.a import x\n",
    }, ["pkg/prune/b.py:2: pkg.prune.b imports pkg.prune.a"]),
    "library_imports_pipeline": ("upward_imports", {
        "pkg/prune/a.py": "import os\n\ndef f():\n"
                          "  from pkg.pipeline import run\n",
    }, ["pkg/prune/a.py:4: library module pkg.prune.a imports "
        "pkg.pipeline.run"]),
    "top_level_module_imports_cli": ("upward_imports", {
        "pkg/train.py": "from pkg.cli import train\n",
    }, ["pkg/train.py:1: library module pkg.train imports pkg.cli"]),
    "package_cycle": ("package_cycles", {
        "pkg/quant/__init__.py": "",
        "pkg/quant/qat.py": "from pkg.prune import schedules\n",
        "pkg/prune/stats.py": "from pkg.quant import qat\n",
    }, ["pkg.prune <-> pkg.quant",
        "pkg/prune/stats.py:1: pkg.prune.stats imports pkg.quant",
        "pkg/quant/qat.py:1: pkg.quant.qat imports pkg.prune"]),
    "duplicate_module_names": ("duplicate_names", {
        "pkg/pipeline/schedules.py": "",
    }, ["2 modules are named 'schedules': pkg/pipeline/schedules.py, "
        "pkg/prune/schedules.py"]),
    "alias_that_does_more": ("duplicate_names", {
        "pkg/train.py": ALIAS + "print('hi')\n",
    }, ["'train': pkg/cli/train.py, pkg/train.py"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_checker_catches(tmp_path, case):
  check, files, expected = CASES[case]
  graph = make_graph(tmp_path, files)
  violations = CHECKS[check](graph)
  assert len(violations) == 1, violations
  for text in expected:
    assert text in violations[0], violations[0]
  if check == "package_cycles":  # a cycle of packages, not of modules
    assert module_cycles(graph) == []
