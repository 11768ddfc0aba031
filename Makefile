# Everything runs inside .venv, created from pyproject.toml; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export MUJOCO_GL ?= egl

.PHONY: setup browser demo test bench bench-long lint clean

setup: $(STAMP) browser

# The dashboard's browser test drives a system Chromium (serl/dashboard/browser.py). On Debian, as root, this
# installs the `chromium` package; anywhere else it says what is missing (Ubuntu's chromium is a snap, which
# containers cannot run: install Google Chrome's .deb and set SERL_CHROMIUM=/usr/bin/google-chrome).
browser:
	@if [ -n "$$SERL_CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && grep -q '^ID=debian' /etc/os-release 2>/dev/null; then \
		echo "make setup: installing Debian's chromium (the dashboard's browser test)"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "make setup: could not install chromium (no network?); the dashboard's browser test will fail"; \
	else \
		echo "make setup: no Chromium found; the dashboard's browser test will fail until there is one."; \
		echo "  Debian: sudo apt-get install chromium"; \
		echo "  Ubuntu (chromium is a snap): install Google Chrome's .deb, then export SERL_CHROMIUM=/usr/bin/google-chrome"; \
		echo "  elsewhere: any Chromium or Chrome binary, named by SERL_CHROMIUM"; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,ros,robot,wandb]'
	touch $(STAMP)

# Trains the state-based pick-cube task to its 80% evaluation target (or 30 minutes) in a fresh run folder.
demo: setup
	$(BIN)/serl train sim_pick_cube_state --run demo-$$(date +%Y%m%d-%H%M%S)

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/sim_step.py
	$(BIN)/python bench/buffer_memory.py
	$(BIN)/python bench/policy_latency.py
	$(BIN)/python bench/transport.py
	$(BIN)/python bench/learner.py
	$(BIN)/python bench/state_learner.py
	$(BIN)/python bench/robot_loop.py --adapter sim
	$(BIN)/python bench/robot_loop.py --adapter libfranka

# The long ones: training to a target over three seeds (state: about 20 minutes on 2 cores; pixels: 40 minutes,
# up to 3 hours), kills and a network cut (about 5 minutes), the reward classifier over 200 held-out episodes
# (about 10 minutes).
bench-long: setup
	$(BIN)/python bench/sample_efficiency.py --task sim_pick_cube_state --seeds 0 1 2 --target 0.9
	$(BIN)/python bench/sample_efficiency.py --task sim_pick_cube --seeds 0 1 2 --target 0.5 --max-minutes 60
	$(BIN)/python bench/chaos.py
	$(BIN)/python bench/reward_classifier.py

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .jax_cache
