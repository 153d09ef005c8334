# The two commands: `make demo` runs a whole release against a local sandbox; `make test` runs
# the checks and the tests. Both set up what they need: .venv (make install) and the system and
# npm tools the tests use (scripts/install-tools.sh: PostgreSQL, redis-server, Chromium,
# the Supabase CLI and Playwright).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install tools demo test lint typecheck unit bench clean

install: $(STAMP)

# The bot is installed editable; sandbox/ (the demo's emulators and app template) is not in its
# wheel, so a .pth file puts this checkout on the venv's path: `sandbox` imports for the demo and tests.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -c 'import sys, sysconfig, pathlib; pathlib.Path(sysconfig.get_path("purelib"), "release-bot-checkout.pth").write_text(sys.argv[1] + "\n")' '$(CURDIR)'
	@touch $(STAMP)

tools:
	bash scripts/install-tools.sh

demo: install
	@bash scripts/install-tools.sh || echo "demo: some tools could not be installed; the steps that need them will say they were skipped"
	$(BIN)/release-bot demo

lint: install
	$(BIN)/ruff check bot handlers sandbox tests bench

typecheck: install
	$(BIN)/mypy

unit: install tools
	$(BIN)/pytest

test: install tools lint typecheck unit

bench: install tools
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
