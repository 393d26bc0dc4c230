# labelgen: `make demo` sets everything up and runs the demo; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo setup test test-fast lint lock browser-deps serve clean

demo: setup
	mkdir -p var
	DEBUG=1 $(PY) manage.py migrate --noinput
	DEBUG=1 $(PY) manage.py setup_demo
	DEBUG=1 bin/serve-demo

# The virtualenv is rebuilt only when the lock changes.
setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Debian's chromium for the Playwright browser tests (Playwright's own browser download is not used).
browser-deps:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

lint: setup
	$(VENV)/bin/ruff check .

test: setup browser-deps lint
	bin/run-tests

# Everything but the e2e tier (workers, browsers, training), on the embedded stack: the loop while you work.
test-fast: setup lint
	mkdir -p var/test
	LABELGEN_VAR_DIR="$$PWD/var/test" OMP_NUM_THREADS=2 $(PY) -m pytest -q -m "not e2e"

lock:
	rm -rf /tmp/labelgen-lock && $(PYTHON) -m venv /tmp/labelgen-lock
	/tmp/labelgen-lock/bin/pip install -q -r requirements.in
	( echo "# Lock file: pip freeze of a fresh .venv built from requirements.in (\`make lock\`). torch is the CPU wheel."; \
	  /tmp/labelgen-lock/bin/pip freeze | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' ) > requirements.txt

serve: setup
	DEBUG=1 bin/serve-demo

clean:
	rm -rf var/test staticfiles test-artifacts
