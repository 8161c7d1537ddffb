# Calsync: `make demo` and `make test` work on a fresh machine (they create .venv and install).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Every install is `uv sync --frozen` from uv.lock: the versions CI tested are the versions a
# fresh machine gets. uv itself comes from PyPI, pinned, into .tools/ (nothing else is needed
# beyond Python 3.11+). After changing dependencies in pyproject.toml: `make lock`.
UV_VERSION := 0.13.9
UV_DIR := .tools/uv-$(UV_VERSION)
UV := $(UV_DIR)/bin/uv
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never

.PHONY: install bytecode lock lint system-deps test demo bench bench-10000 bench-quick clean

$(UV):
	$(PYTHON) -m pip install -q --disable-pip-version-check --target $(UV_DIR) 'uv==$(UV_VERSION)'

# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (this machine, the Dockerfile) Python never
# caches what it compiles, and every command compiled peewee, requests… again (~0.25 s of a
# 0.47 s `status`). `bytecode` does the same for calsync's own modules.
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --extra test --extra bench --python $(PYTHON)
	@touch $(STAMP)

bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 models.py run_bot.py run_console.py core bot console web >/dev/null

install: $(STAMP) bytecode

lock: | $(UV)
	$(UV) lock --python $(PYTHON)

# Style, lint and types over the whole tree (config in pyproject.toml); `make test` runs it first.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The tests start a real PostgreSQL (initdb/pg_ctl), drive pages in Debian's headless
# Chromium (Playwright with executable_path), and build and run the Dockerfile's image with
# podman (runc: crun refuses hybrid cgroups; mmdebstrap makes the base image, no image
# registry being reachable): install what is missing, once.
SYSTEM_PACKAGES := postgresql chromium podman runc mmdebstrap
system-deps:
	@missing=""; \
	{ command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	for tool in podman runc mmdebstrap; do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing:$$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else echo "missing system packages:$$missing (apt-get install$$missing)" >&2; exit 1; fi

test: $(STAMP) system-deps lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n auto

demo: $(STAMP) bytecode
	$(BIN)/python scripts/demo.py

bench: $(STAMP) bytecode
	$(BIN)/python bench/sync_bench.py
	$(BIN)/python bench/feed_bench.py
	$(BIN)/python bench/compare_bench.py
	$(BIN)/python bench/sweep_bench.py
	$(BIN)/python bench/console_bench.py
	$(BIN)/python bench/hostile_bench.py
	$(BIN)/python bench/scaleout_bench.py
	$(BIN)/python bench/push_bench.py
	$(BIN)/python bench/sweep_bench.py --connections 10000

# The 10,000-connection no-change sweep alone (issue 15; the last step of bench): ~15 minutes on 2 cores.
bench-10000: $(STAMP) bytecode
	$(BIN)/python bench/sweep_bench.py --connections 10000

bench-quick: $(STAMP) bytecode
	$(BIN)/python bench/sync_bench.py --quick
	$(BIN)/python bench/feed_bench.py --quick
	$(BIN)/python bench/compare_bench.py --quick
	$(BIN)/python bench/sweep_bench.py --quick
	$(BIN)/python bench/hostile_bench.py --quick
	$(BIN)/python bench/push_bench.py --quick

clean:
	rm -rf $(VENV) .tools var .pytest_cache .mypy_cache .ruff_cache
