# Calsync: `make demo` and `make test` work on a fresh machine (they create .venv and install).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install system-deps test demo bench bench-10000 bench-quick clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	@touch $(STAMP)

install: $(STAMP)

# The tests start a real PostgreSQL (initdb/pg_ctl) and drive pages in Debian's headless
# Chromium (Playwright with executable_path): install what is missing, once.
SYSTEM_PACKAGES := postgresql chromium
system-deps:
	@missing=""; \
	{ command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing:$$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else echo "missing system packages:$$missing (apt-get install$$missing)" >&2; exit 1; fi

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider -n auto

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

bench: $(STAMP)
	$(BIN)/python bench/sync_bench.py
	$(BIN)/python bench/feed_bench.py
	$(BIN)/python bench/compare_bench.py
	$(BIN)/python bench/sweep_bench.py
	$(BIN)/python bench/console_bench.py
	$(BIN)/python bench/hostile_bench.py
	$(BIN)/python bench/scaleout_bench.py
	$(BIN)/python bench/push_bench.py

# The 10,000-connection no-change sweep (issue 15): about 30 minutes on 2 cores.
bench-10000: $(STAMP)
	$(BIN)/python bench/sweep_bench.py --connections 10000

bench-quick: $(STAMP)
	$(BIN)/python bench/sync_bench.py --quick
	$(BIN)/python bench/feed_bench.py --quick
	$(BIN)/python bench/compare_bench.py --quick
	$(BIN)/python bench/sweep_bench.py --quick
	$(BIN)/python bench/hostile_bench.py --quick
	$(BIN)/python bench/push_bench.py --quick

clean:
	rm -rf $(VENV) var .pytest_cache
