# The README's commands. Each works on a fresh machine with Python >= 3.11 and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: test demo bench clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
		{ echo "gatecheck needs Python 3.11 or newer as $(PYTHON); try: make PYTHON=python3.11 ..." >&2; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || \
		{ echo "$(PYTHON) cannot make a virtual environment; on Debian or Ubuntu: apt-get install python3-venv" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamps re-run the install whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.bench-installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

test: $(VENV)/.test-installed
	$(PY) -m pytest -n auto

# The whole system on one machine: a registry (127.0.0.1:8000), a counter
# (127.0.0.1:8080), its sync agent and a demo scanner, all SQLite files in
# .demo/. Ctrl-C stops everything; the next run reuses .demo/.
demo: $(VENV)/.installed
	$(PY) -m appliance.cli demo --data-dir .demo

bench: $(VENV)/.bench-installed
	$(PY) bench/bench_parse.py
	$(PY) bench/bench_decode.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .demo
