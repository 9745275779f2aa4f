# orchd: every target creates .venv and installs what it needs; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell $(PYTHON) -c 'import hashlib,sys; print(hashlib.sha256(open("pyproject.toml","rb").read()).hexdigest()[:12])')
BENCH_STAMP := $(VENV)/.installed-bench
BENCH_DOC := docs/BENCHMARKS.md
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
WHEELHOUSE := dist/orchd-$(VERSION)-wheelhouse.tar.gz

.PHONY: help venv test lint check demo demo-workers bench fuzz reliability screenshots wheelhouse wheelhouse-check clean

help:
	@echo "make demo   - run orchd on a throw-away site and say what it did"
	@echo "make demo-workers - a daemon, NATS and two remote workers; one killed mid-run"
	@echo "make test   - run the test suite"
	@echo "make lint   - ruff, mypy (strict), import-linter, generated docs, the systemd unit"
	@echo "make check  - lint + test (what CI runs)"
	@echo "make bench  - benchmarks; results go to docs/BENCHMARKS.md"
	@echo "make fuzz   - fuzz bundles, spool requests, policies, API requests, the 4-site sync (SECONDS=N each)"
	@echo "make reliability - run the fault and fuzz tests; write docs/RELIABILITY.md"
	@echo "make screenshots - the console's images the README shows (needs chromium)"
	@echo "make wheelhouse - the offline installation archive ($(WHEELHOUSE))"
	@echo "make wheelhouse-check - install that archive with no network and run a smoke job"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "orchd needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

# First the core's own tests, measuring its branch coverage (100 % or fail: [tool.coverage] in
# pyproject.toml), then everything else.
test: $(STAMP)
	$(BIN)/python -m pytest tests/unit tests/contract --cov --cov-report=term
	$(BIN)/python -m pytest --ignore=tests/unit --ignore=tests/contract --durations=15

lint: $(STAMP)
	$(BIN)/ruff check orchd tests tools
	$(BIN)/ruff format --check orchd tests tools
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python tools/gen_docs.py --check
	sh tools/check_systemd.sh $(BIN)/orchd
	sh tools/check_systemd.sh $(BIN)/orchd systemd/orchd-worker.service

check: lint test

# make test runs the fuzz targets briefly and repeatably; this runs each with fresh random inputs
# for SECONDS seconds.
SECONDS ?= 60
fuzz: $(STAMP)
	ORCHD_FUZZ_SECONDS=$(SECONDS) $(BIN)/python -m pytest tests/fuzz
	ORCHD_FUZZ_SECONDS=$(SECONDS) $(BIN)/python -m pytest tests/integration/test_sync_simulation.py -k fuzzed

reliability: $(STAMP)
	ORCHD_RELIABILITY=docs/RELIABILITY.md $(BIN)/python -m pytest tests/faults tests/fuzz

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" sh tools/demo.sh

demo-workers: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" sh tools/demo_workers.sh

screenshots: $(STAMP)
	$(BIN)/python tools/screenshots.py docs/images

# Built from the package registry; installed and checked with none (see README, "Air-gapped hosts").
wheelhouse: $(STAMP)
	sh tools/wheelhouse.sh build $(BIN)/python $(WHEELHOUSE)

wheelhouse-check: $(STAMP)
	test -f $(WHEELHOUSE) || $(MAKE) wheelhouse
	sh tools/wheelhouse.sh check $(BIN)/python $(WHEELHOUSE)

# The bench extra (Huey, to compare with) goes into the same venv, only for this target.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

# About 15 minutes on a 2-core machine; each script rewrites only its own section of $(BENCH_DOC).
bench: $(BENCH_STAMP)
	$(BIN)/python tools/bench/append.py --events 20000 --batch 100,1000,10000 --repeat 5 \
		--write $(BENCH_DOC)
	$(BIN)/python tools/bench/lifecycle.py --jobs 2000 --concurrency 2,32 --repeat 5 \
		--write $(BENCH_DOC)
	$(BIN)/python tools/bench/subprocess_jobs.py --jobs 2000 --concurrency 2 --repeat 5 \
		--write $(BENCH_DOC)
	$(BIN)/python tools/bench/levers.py --jobs 2000 --concurrency 2,32 --repeat 5 \
		--write $(BENCH_DOC)
	(command -v sqlite3 && command -v zstd) >/dev/null || (apt-get update && apt-get install -y sqlite3 zstd); \
		$(BIN)/python tools/bench/bundles.py --events 100000,300000 --origins 1,100,1000 --repeat 3 \
		--batch 10000 --write $(BENCH_DOC)
	$(BIN)/python tools/bench/daemon.py --files 1000 --burst 1000 --repeat 3 \
		--schedule-minutes 2 --idle-seconds 60 --diagnose --write $(BENCH_DOC)
	$(BIN)/python tools/bench/retention.py --events 100000,400000 --repeat 3 --write $(BENCH_DOC)
	$(BIN)/python tools/bench/cli_start.py --runs 21 --write $(BENCH_DOC)
	$(BIN)/python tools/bench/open_origins.py --origins 1,100,1000 --runs 11 --write $(BENCH_DOC)

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .hypothesis
