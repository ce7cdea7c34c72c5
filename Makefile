# The only entry points: CI calls these unchanged.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CLAUDE_CODE_VERSION := 2.1.197
CLAUDE_PREFIX := .cache/npm
CLAUDE_BIN := $(CLAUDE_PREFIX)/node_modules/.bin/claude
# Each CLI in its own prefix: .cache/npm is shared and holds Claude Code only.
CODEX_VERSION := 0.171.0
CODEX_PREFIX := .cache/npm-codex
CODEX_BIN := $(CODEX_PREFIX)/node_modules/.bin/codex
GEMINI_VERSION := 0.61.0
GEMINI_PREFIX := .cache/npm-gemini
GEMINI_BIN := $(GEMINI_PREFIX)/node_modules/.bin/gemini
VENDOR := src/agentpty/web/vendor
# Run alone, the suite leaves a core idle while it waits on real CLIs and
# browsers; it holds about 590 CPU-seconds of work in all. Three pytest-xdist
# workers, handed two tests at a time, slow ones first (tests/conftest.py),
# keep both cores busy. TEST_PARALLEL= runs everything in one process.
TEST_PARALLEL ?= -n 3 --dist load --maxschedchunk 2

.PHONY: run test lint bench web claude codex gemini chromium clean test-claude-latest

run: $(VENV)/.run web
	$(BIN)/agentpty serve

test: $(VENV)/.test web claude codex gemini chromium
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	@# The suite starts hundreds of Python processes (servers, CLI runs, session
	@# hosts); with PYTHONDONTWRITEBYTECODE set (CI runners do) each would
	@# compile agentpty from source again. compileall writes regardless.
	$(BIN)/python -m compileall -q src tests
	AGENTPTY_TEST_CLAUDE_BIN=$(abspath $(CLAUDE_BIN)) \
	AGENTPTY_TEST_CODEX_BIN=$(abspath $(CODEX_BIN)) \
	AGENTPTY_TEST_GEMINI_BIN=$(abspath $(GEMINI_BIN)) \
	    $(BIN)/pytest -q $(TEST_PARALLEL) $(PYTEST_ARGS)

lint: $(VENV)/.test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(VENV)/.test
	$(BIN)/python -m bench

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.run: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.run

# xterm.js comes from the npm registry, copied next to the UI (not committed).
web: $(VENDOR)/.installed

$(VENDOR)/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/@xterm/xterm/lib/xterm.js node_modules/@xterm/xterm/css/xterm.css \
	   node_modules/@xterm/addon-fit/lib/addon-fit.js $(VENDOR)/
	touch $@

# The real Claude Code CLI, pinned, for the tests (cached under .cache/).
claude: $(CLAUDE_BIN)

$(CLAUDE_BIN):
	mkdir -p $(CLAUDE_PREFIX)
	npm install --prefix $(CLAUDE_PREFIX) --no-audit --no-fund --loglevel=error \
	    @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION)
	test -x $@

# The real Codex CLI, pinned. npm fetches its native binary as the optional
# dependency @openai/codex-linux-x64 from the registry: nothing is downloaded
# at run time (docs/codex.md).
codex: $(CODEX_BIN)

$(CODEX_BIN):
	mkdir -p $(CODEX_PREFIX)
	npm install --prefix $(CODEX_PREFIX) --no-audit --no-fund --loglevel=error \
	    @openai/codex@$(CODEX_VERSION)
	test -x $@

# The real Gemini CLI, pinned (plain JavaScript; runs on the system's Node 20).
gemini: $(GEMINI_BIN)

$(GEMINI_BIN):
	mkdir -p $(GEMINI_PREFIX)
	npm install --prefix $(GEMINI_PREFIX) --no-audit --no-fund --loglevel=error \
	    @google/gemini-cli@$(GEMINI_VERSION)
	test -x $@

# Version drift: the agent-state and delivery tests on the newest Claude Code
# the npm registry serves (installed fresh each run under .cache/claude-latest).
# Slower than `make test`; CI runs it at least once per change to agent state,
# hooks or delivery. Differences go into docs/claude-code-findings.md.
CLAUDE_LATEST_PREFIX := .cache/claude-latest
CLAUDE_LATEST_TESTS := tests/test_agent_state_claude.py tests/test_claude.py tests/test_claude_hooks_timeline.py

test-claude-latest: $(VENV)/.test web chromium
	mkdir -p $(CLAUDE_LATEST_PREFIX)
	npm install --prefix $(CLAUDE_LATEST_PREFIX) --no-audit --no-fund --loglevel=error \
	    @anthropic-ai/claude-code@latest
	$(CLAUDE_LATEST_PREFIX)/node_modules/.bin/claude --version
	AGENTPTY_TEST_CLAUDE_BIN=$(abspath $(CLAUDE_LATEST_PREFIX)/node_modules/.bin/claude) \
	    $(BIN)/pytest -q $(TEST_PARALLEL) $(CLAUDE_LATEST_TESTS) $(PYTEST_ARGS)

# Debian's Chromium for the browser tests (Playwright's own download does not work here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

clean:
	rm -rf $(VENV) node_modules $(VENDOR) .cache .pytest_cache .mypy_cache .ruff_cache
