"""The Bazel BUILD file is in step with the tree (tools/check_bazel.py).

(a) the static check passes on the repository, whose py_test targets run
pytest through tests/pytest_runner.py; (b) it fails, naming what is missing
or stale, on small fake trees (including a py_test that would pass without
running a test); the runner runs pytest and returns its status; (c) with
`bazel` on PATH, Bazel itself queries and builds every target of the
repository.
"""

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

# realpath: under `bazel test` this file is a symlink into the source tree.
REPO = pathlib.Path(os.path.realpath(__file__)).parents[1]
SCRIPT = REPO / "tools" / "check_bazel.py"


def _load_checker():
  spec = importlib.util.spec_from_file_location("check_bazel", str(SCRIPT))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


check_bazel = _load_checker()


def run_checker(*args, root=None, timeout=120):
  cmd = [sys.executable, str(SCRIPT)] + list(args)
  if root is not None:
    cmd += ["--root", str(root)]
  proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        universal_newlines=True, timeout=timeout)
  return proc.returncode, proc.stdout


def write_files(root, files):
  for rel, text in files.items():
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


LIBRARIES = textwrap.dedent("""\
    py_library(
        name = "sub",
        srcs = glob(["tf_compress/sub/**/*.py"]),
    )

    py_library(
        name = "tf_compress",
        srcs = glob(["tf_compress/*.py"]),
        deps = [":sub"],
    )
    """)

TEST_X = textwrap.dedent("""\
    py_test(
        name = "test_x",
        srcs = ["tests/pytest_runner.py", "tests/test_x.py"],
        main = "tests/pytest_runner.py",
        args = ["$(location tests/test_x.py)"],
        deps = [":tf_compress"],
    )
    """)

# The old shape: the pytest module itself as main, which runs no test.
TEST_X_DIRECT = textwrap.dedent("""\
    py_test(
        name = "test_x",
        srcs = ["tests/test_x.py"],
        main = "tests/test_x.py",
        deps = [":tf_compress"],
    )
    """)


@pytest.fixture
def fake_tree(tmp_path):
  """A tiny tree whose BUILD has no py_test for tests/test_x.py."""
  write_files(tmp_path, {
      "WORKSPACE": 'workspace(name = "tf_compress")\n',
      "tf_compress/__init__.py": "",
      "tf_compress/core.py": "",
      "tf_compress/sub/__init__.py": "",
      "tf_compress/sub/deep/mod.py": "",
      "tests/test_x.py": "def test_x():\n  pass\n",
      "tests/pytest_runner.py": "",
      "BUILD": LIBRARIES,
  })
  return tmp_path


# (a) The real tree. ----------------------------------------------------------


def test_static_check_passes_on_the_repository():
  rc, out = run_checker("--no-bazel", root=REPO)
  assert rc == 0, out
  assert "BUILD in step with the tree" in out


def test_checker_finds_every_test_module_of_the_repository():
  tree = check_bazel.Tree(str(REPO))
  tests = sorted(p.relative_to(REPO).as_posix()
                 for p in (REPO / "tests").rglob("test_*.py"))
  assert tree.tests == tests
  assert "tests/test_build_files.py" in tree.tests
  assert check_bazel.TEST_RUNNER not in tree.tests + tree.test_helpers


def test_every_py_test_of_the_repository_runs_pytest_on_its_module():
  build_files = check_bazel.find_build_files(str(REPO))
  targets, _, errors = check_bazel.read_static(str(REPO), build_files)
  assert not errors
  runner = check_bazel.TEST_RUNNER
  tests = [t for t in targets if t.kind == "py_test"]
  assert sorted(t.test_module() for t in tests) == check_bazel.Tree(
      str(REPO)).tests
  for target in tests:
    module = target.test_module()
    assert target.main == runner, target.label
    assert sorted(target.srcs) == sorted([runner, module]), target.label
    assert target.args == ["$(location %s)" % module], target.label
    assert sorted(target.deps) == ["//:test_support", "//:tf_compress"]
  # The runner is no helper library's file: only the tests' srcs have it.
  support = [t for t in targets if t.name == "test_support"]
  assert support and runner not in support[0].srcs
  assert "tests/conftest.py" in support[0].srcs


def test_write_is_stable_on_the_repository(tmp_path):
  """--write on a copy of the tree reproduces the committed BUILD exactly."""
  copy = tmp_path / "repo"
  ignore = shutil.ignore_patterns(".*", "__pycache__", "*.egg-info", "runs",
                                  "demo_output", "build", "dist")
  shutil.copytree(str(REPO), str(copy), ignore=ignore)
  rc, out = run_checker("--write", root=copy)
  assert rc == 0, out
  assert "already up to date" in out, (
      "BUILD differs from what `python3 tools/check_bazel.py --write` makes:"
      "\n" + out)


# (b) Fake trees that are out of step. ---------------------------------------


def test_fails_and_names_a_test_module_without_a_target(fake_tree):
  rc, out = run_checker("--no-bazel", root=fake_tree)
  assert rc == 1, out
  assert "missing: py_test for tests/test_x.py" in out
  assert 'name = "test_x"' in out
  assert out.count("missing:") == 1, out


def test_passes_once_the_test_has_a_target(fake_tree):
  (fake_tree / "BUILD").write_text(LIBRARIES + "\n" + TEST_X)
  rc, out = run_checker("--no-bazel", root=fake_tree)
  assert rc == 0, out
  assert "1 py_test targets" in out


def test_fails_on_a_subpackage_without_a_library(fake_tree):
  write_files(fake_tree, {"tf_compress/newsub/__init__.py": "",
                          "BUILD": LIBRARIES + "\n" + TEST_X})
  rc, out = run_checker("--no-bazel", root=fake_tree)
  assert rc == 1, out
  assert "py_library for subpackage tf_compress/newsub/" in out


def test_fails_on_a_library_the_core_does_not_depend_on(fake_tree):
  build = LIBRARIES.replace('deps = [":sub"],', "") + "\n" + TEST_X
  write_files(fake_tree, {"BUILD": build})
  rc, out = run_checker("--no-bazel", root=fake_tree)
  assert rc == 1, out
  assert "//:tf_compress does not depend on //:sub" in out


def test_fails_on_a_py_test_that_runs_no_test(fake_tree):
  """A pytest module as main, without a __main__ hook, passes vacuously."""
  write_files(fake_tree, {"BUILD": LIBRARIES + "\n" + TEST_X_DIRECT})
  rc, out = run_checker("--no-bazel", root=fake_tree)
  assert rc == 1, out
  assert "//:test_x: main tests/test_x.py is a pytest module without" in out
  assert 'args = ["$(location tests/test_x.py)"]' in out
  # A module with its own __main__ hook may still be its py_test's main.
  write_files(fake_tree, {"tests/test_x.py": (
      "import sys\nimport pytest\n\ndef test_x():\n  pass\n\n"
      "if __name__ == '__main__':\n  sys.exit(pytest.main([__file__]))\n")})
  rc, out = run_checker("--no-bazel", root=fake_tree)
  assert rc == 0, out


def test_fails_on_a_runner_py_test_with_bad_args(fake_tree):
  no_args = TEST_X.replace('    args = ["$(location tests/test_x.py)"],\n',
                           "")
  write_files(fake_tree, {"BUILD": LIBRARIES + "\n" + no_args})
  rc, out = run_checker("--no-bazel", root=fake_tree)
  assert rc == 1, out
  assert "//:test_x: runs tests/pytest_runner.py but its args name no " in out
  assert "missing: py_test for tests/test_x.py" in out
  not_in_srcs = TEST_X.replace('"tests/pytest_runner.py", "tests/test_x.py"',
                               '"tests/pytest_runner.py"')
  write_files(fake_tree, {"BUILD": LIBRARIES + "\n" + not_in_srcs})
  rc, out = run_checker("--no-bazel", root=fake_tree)
  assert rc == 1, out
  assert ("//:test_x: its test module tests/test_x.py (in args) is not in "
          "its srcs") in out
  (fake_tree / "tests" / "pytest_runner.py").unlink()
  write_files(fake_tree, {"BUILD": LIBRARIES + "\n" + TEST_X})
  rc, out = run_checker("--no-bazel", root=fake_tree)
  assert rc == 1, out
  assert "stale: //:test_x names tests/pytest_runner.py" in out


def test_runner_runs_pytest_and_returns_its_status(tmp_path):
  """tests/pytest_runner.py: 0 when the tests pass, non-zero otherwise."""
  write_files(tmp_path, {
      "test_ok.py": "def test_a():\n  pass\n\ndef test_b():\n  pass\n",
      "test_bad.py": "def test_a():\n  assert 1 == 2\n",
  })
  runner = str(REPO / "tests" / "pytest_runner.py")
  env = dict(os.environ)
  env.pop("XML_OUTPUT_FILE", None)  # set when this runs under `bazel test`
  results = {}
  for name in ("test_ok.py", "test_bad.py"):
    proc = subprocess.run([sys.executable, runner, name], cwd=str(tmp_path),
                          env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=120)
    results[name] = (proc.returncode, proc.stdout)
  rc, out = results["test_ok.py"]
  assert rc == 0 and "2 passed" in out, out
  rc, out = results["test_bad.py"]
  assert rc == 1 and "1 failed" in out, out
  assert not (tmp_path / ".pytest_cache").exists()  # -p no:cacheprovider


def test_fails_on_a_stale_target(fake_tree):
  stale = TEST_X.replace("test_x", "test_gone")
  write_files(fake_tree, {"BUILD": LIBRARIES + "\n" + TEST_X + "\n" + stale})
  rc, out = run_checker("--no-bazel", root=fake_tree)
  assert rc == 1, out
  assert "stale: //:test_gone names tests/test_gone.py" in out


def test_fails_on_missing_entry_point_and_example_binaries(fake_tree):
  write_files(fake_tree, {
      "tf_compress/train.py": 'if __name__ == "__main__":\n  pass\n',
      "examples/demo.py": "",
      "BUILD": LIBRARIES + "\n" + TEST_X,
  })
  rc, out = run_checker("--no-bazel", root=fake_tree)
  assert rc == 1, out
  assert "missing: py_binary for tf_compress/train.py" in out
  assert "missing: py_binary for examples/demo.py" in out


def test_write_fixes_the_tree_keeps_placeholders_and_is_stable(fake_tree):
  placeholder = textwrap.dedent("""\
      py_library(
          name = "later",
          srcs = glob(["tf_compress/later/**/*.py"]),
      )
      """)
  write_files(fake_tree, {
      "tf_compress/train.py": 'if __name__ == "__main__":\n  pass\n',
      "examples/demo.py": "",
      "tests/conftest.py": "",
      "BUILD": LIBRARIES + "\n" + placeholder,
  })
  rc, out = run_checker("--write", root=fake_tree)
  assert rc == 0, out
  assert "kept the placeholder library 'later'" in out
  build = (fake_tree / "BUILD").read_text()
  for name in ("sub", "later", "tf_compress", "test_support", "train",
               "example_demo", "test_x"):
    assert 'name = "%s"' % name in build
  assert 'main = "tests/pytest_runner.py"' in build
  assert 'args = ["$(location tests/test_x.py)"]' in build
  assert 'name = "pytest_runner"' not in build
  assert build.index('name = "later"') < build.index('name = "sub"')
  rc, out = run_checker("--write", root=fake_tree)
  assert rc == 0 and "already up to date" in out, out
  rc, out = run_checker("--no-bazel", root=fake_tree)
  assert rc == 0, out
  assert "matches no files yet" in out  # the placeholder, as a warning


def test_fails_on_a_build_file_it_cannot_read(fake_tree):
  write_files(fake_tree, {"BUILD": 'load("//:defs.bzl", "my_tests")\n'
                                   + LIBRARIES + "\nmy_tests()\n"})
  rc, out = run_checker("--no-bazel", root=fake_tree)
  assert rc == 1, out
  assert "my_tests" in out and "cannot see" in out


def test_reads_list_comprehensions(fake_tree):
  write_files(fake_tree, {"BUILD": LIBRARIES + textwrap.dedent("""
      [py_test(
          name = f[len("tests/"):-len(".py")],
          srcs = ["tests/pytest_runner.py", f],
          main = "tests/pytest_runner.py",
          args = ["$(location %s)" % f],
          deps = [":tf_compress"],
      ) for f in glob(["tests/test_*.py"])]
      """)})
  rc, out = run_checker("--no-bazel", root=fake_tree)
  assert rc == 0, out


def test_glob_follows_bazel_rules(tmp_path):
  write_files(tmp_path, {
      "p/a.py": "", "p/b.txt": "", "p/q/c.py": "", "p/q/r/d.py": "",
      "p/sub/BUILD": "", "p/sub/e.py": "",
  })
  glob = check_bazel.glob
  assert glob(str(tmp_path), "", ["p/*.py"]) == ["p/a.py"]
  # '**' matches zero or more directories but stops at other packages.
  assert glob(str(tmp_path), "", ["p/**/*.py"]) == [
      "p/a.py", "p/q/c.py", "p/q/r/d.py"]
  assert glob(str(tmp_path), "", ["p/**/*.py"], exclude=["p/q/**"]) == [
      "p/a.py"]
  assert glob(str(tmp_path), "p", ["**/*.py"]) == [
      "p/a.py", "p/q/c.py", "p/q/r/d.py"]
  assert glob(str(tmp_path), "", ["missing/**/*.py"]) == []


# (c) Bazel on the real tree. ------------------------------------------------


@pytest.mark.skipif(shutil.which("bazel") is None,
                    reason="bazel is not on PATH (tools/install_bazel.sh "
                    "installs Debian's bazel-bootstrap)")
@pytest.mark.skipif("TEST_SRCDIR" in os.environ,
                    reason="running under `bazel test`: no Bazel in Bazel")
def test_bazel_builds_every_target_of_the_repository():
  links_before = set(REPO.glob("bazel-*"))
  start = time.time()
  rc, out = run_checker("--bazel", root=REPO, timeout=1800)
  elapsed = time.time() - start
  assert rc == 0, out
  assert "bazel: " in out and "BUILD in step with the tree" in out, out
  print("bazel check took %.1f s:\n%s" % (elapsed, out))
  # The check must leave no bazel-* convenience links in the repository.
  assert set(REPO.glob("bazel-*")) == links_before
