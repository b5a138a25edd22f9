# prunebench: `make demo` runs the embedded default; `make test` runs the whole test suite. Both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test,postgres,slurm]'
	touch $@

.PHONY: install demo test chromium postgresql
install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/benchmark run

# The HTML leaderboard test drives a real headless Chromium (Debian's package). Installed when we are root;
# otherwise that one test is skipped with a reason.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  echo "chromium not installed: the HTML export browser test will be skipped"; }

# The results-store and sweep-queue tests start a throwaway PostgreSQL server from Debian's package (its binaries,
# not a service). Installed when we are root; otherwise those tests are skipped with a reason.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || \
	  echo "postgresql not installed: the PostgreSQL store tests will be skipped"; }

# The suite runs on 2 pytest-xdist worker processes (CI has 2 cores), each test module on one worker, modules handed
# out in file order (tests/conftest.py says why). `make test PYTEST_ARGS=` runs it in one process.
PYTEST_ARGS ?= -n 2 --dist loadfile --no-loadscope-reorder
test: $(VENV)/.installed chromium postgresql
	$(PY) -m pytest -q $(PYTEST_ARGS)
