# Two commands do all the set-up on a fresh machine:
#   make demo   - create .venv, install tf_compress, run the main job on digits
#   make test   - the same set-up plus the test extras, then the whole suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEMO_DIR ?= demo_output

.PHONY: demo test install install-test bazel-check bazel-tools chromium-tools clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python setup.cfg pyproject.toml constraints.txt
	$(PIP) install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install --quiet -c constraints.txt -e '.[test]'
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(PY) -m tf_compress.train --flagfile=configs/demo.flags --output_dir=$(DEMO_DIR)

# Bazel is optional for the Python suite; install Debian's offline-capable
# bazel-bootstrap when we can, so that tests/test_build_files.py builds the
# libraries too. Failing to install only skips that one test.
bazel-tools:
	-@command -v bazel >/dev/null 2>&1 || tools/install_bazel.sh

# Headless Chromium renders report.html in tests/test_report_browser.py;
# failing to install it only skips that one test.
chromium-tools:
	-@command -v chromium >/dev/null 2>&1 || tools/install_chromium.sh

# A throwaway PostgreSQL cluster holds the study that two tuning workers
# share in tests/test_tune_postgres.py; Debian keeps initdb off PATH, in
# /usr/lib/postgresql/<version>/bin. Failing to install the server only skips
# those tests.
.PHONY: postgresql-tools
postgresql-tools:
	-@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  command -v initdb >/dev/null 2>&1 || tools/install_postgresql.sh

test: install-test bazel-tools chromium-tools postgresql-tools
	$(PY) -m pytest -q -n 2 --dist loadfile tests

bazel-check: bazel-tools
	$(PYTHON) tools/gen_build.py --check --bazel

clean:
	rm -rf $(VENV) $(DEMO_DIR) *.egg-info
