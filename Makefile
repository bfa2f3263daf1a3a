# The README's commands. Each works on a fresh machine with Python >= 3.11 and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: test demo bench clean

$(PY):
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

# The appliance end to end on its embedded defaults (SQLite files in .demo/,
# nothing leaves 127.0.0.1). SERVE=1 keeps the counter screen running after.
demo: $(VENV)/.installed
	$(PY) -m appliance.cli demo --data-dir .demo $(if $(SERVE),--serve)

bench: $(VENV)/.bench-installed
	$(PY) bench/bench_parse.py
	$(PY) bench/bench_decode.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .demo
