# opsconsole: `make run` starts the console, `make test` checks everything.
# A fresh clone needs only Python 3.11 and make; all else comes from requirements.lock.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.lock | cut -c1-12)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# mypy's Django plugin imports the settings, which insist on these; nothing connects.
LINT_ENV := DATABASE_URL=postgresql://lint@127.0.0.1:1/lint REDIS_URL=redis://127.0.0.1:1/0 DJANGO_DEBUG=true
# record()'s fast path in C; where it is not built, record() runs its Python twin.
RECORDC := apps/metrics/_recordc$(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')

.PHONY: run test lint pytest venv chromium manage lock clean

run: $(STAMP) $(RECORDC)
	$(BIN)/python -m opsconsole.run

test: lint chromium $(RECORDC)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(LINT_ENV) $(BIN)/mypy apps opsconsole

venv: $(STAMP) $(RECORDC)

$(STAMP): requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	@rm -f $(VENV)/.installed-*
	@touch $@

$(RECORDC): apps/metrics/_recordc.c $(STAMP)
	@include="$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"; \
	if command -v $(CC) >/dev/null && test -f "$$include/Python.h"; then \
		set -x; $(CC) -O2 -Wall -Wextra -Wno-unused-parameter -Werror -shared -fPIC \
			-I"$$include" -o $@ $<; \
	else echo "no $(CC) or no Python.h: record() runs in Python"; fi

# Browser tests drive Debian's chromium; Playwright never downloads a browser of its own.
chromium:
	@command -v chromium >/dev/null || { \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

# Run a manage.py command against the servers of a running `make run`:
#   make manage CMD="tokens create --user admin --scopes read"
manage: $(STAMP)
	@test -f var/run.env || { echo "make manage: no var/run.env; start 'make run' first or export DATABASE_URL and REDIS_URL" >&2; exit 1; }
	@set -a && . ./var/run.env && set +a && $(BIN)/python manage.py $(CMD)

# Regenerate requirements.lock after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --extra dev --generate-hashes --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache $(RECORDC)
