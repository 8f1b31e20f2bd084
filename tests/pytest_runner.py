"""Runs pytest on one test module: the `main` of every py_test in BUILD.

The test modules tests/test_*.py are pytest modules: they define test
functions but no `if __name__ == "__main__":` hook. A py_test whose main is
the module itself would just import it and exit 0, so `bazel test` would
report PASSED without running a single test. Instead every py_test runs this
file, and names its test module in its args:

    py_test(
        name = "test_x",
        srcs = ["tests/pytest_runner.py", "tests/test_x.py"],
        main = "tests/pytest_runner.py",
        args = ["$(location tests/test_x.py)"],
        ...
    )

Bazel expands `$(location ...)` to the module's path in the runfiles tree,
which is the test's working directory. The exit status is pytest's: 0 when
every test passed, non-zero when one failed, when the module could not be
imported, or when it holds no tests (5), so `bazel test` reports FAILED.
Further arguments (`bazel test --test_arg=-k --test_arg=name`) go to pytest.

By hand, from the repository root: .venv/bin/python tests/pytest_runner.py
tests/test_x.py
"""

import os
import sys

import pytest


def main(argv):
  if not argv:
    sys.exit("usage: pytest_runner.py TEST_MODULE [PYTEST_ARGS...]")
  print("pytest_runner: %s on %s" % (sys.executable, argv[0]),
        file=sys.stderr)
  args = [argv[0], "-q", "-p", "no:cacheprovider"] + argv[1:]
  xml_output = os.environ.get("XML_OUTPUT_FILE")  # set by `bazel test`
  if xml_output:
    args.append("--junitxml=" + xml_output)
  return pytest.main(args)


if __name__ == "__main__":
  sys.exit(int(main(sys.argv[1:])))
