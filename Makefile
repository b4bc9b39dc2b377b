# The development loop (see CONTRIBUTING.md). Run inside the virtualenv that `make install` set up.
PYTHON ?= python
BENCH = PYTHONPATH=src $(PYTHON) -m pytest -p no:cacheprovider --benchmark-disable-gc -o python_files='bench_*.py'
# The subset CI runs on the debug build: both cores side by side, every invariant checked after every mutation.
DEBUG_TESTS ?= tests/unit tests/differential tests/durable/test_index.py tests/durable/test_data_dir.py

.PHONY: install build build-debug test test-ref test-debug lint typecheck check bench bench-core bench-boto bench-server clean

install:                ## editable install with the test and development extras
	$(PYTHON) -m pip install -e '.[test,dev]'

build:                  ## rebuild the compiled core in place (release: -O2)
	$(PYTHON) setup.py -q build_ext --inplace

build-debug:            ## rebuild it with FASTKIN_DEBUG=1 (-O0 -g, line tracing, bounds checks, invariant checks)
	FASTKIN_DEBUG=1 $(PYTHON) setup.py -q build_ext --inplace

test:                   ## the whole suite on the compiled core
	$(PYTHON) -m pytest -q

test-ref:               ## the whole suite on the pure-Python reference core
	FASTKIN_NO_EXTENSIONS=1 $(PYTHON) -m pytest -q

test-debug:             ## DEBUG_TESTS on the debug build, then back to the release build
	@FASTKIN_DEBUG=1 $(PYTHON) setup.py -q build_ext --inplace >/dev/null
	@$(PYTHON) -c "import fastkin._cy.core as c; assert c.DEBUG, 'not a debug build'"
	@status=0; $(PYTHON) -m pytest -q $(DEBUG_TESTS) || status=$$?; \
	  $(PYTHON) setup.py -q build_ext --inplace >/dev/null 2>&1; exit $$status

lint:                   ## ruff (configured in pyproject.toml)
	$(PYTHON) -m ruff check .

typecheck:              ## mypy on the pure-Python packages (configured in pyproject.toml)
	$(PYTHON) -m mypy

check: lint typecheck test test-ref test-debug   ## everything CI runs after the README's test command

bench:                  ## every benchmark suite (minutes; see bench/README.md)
	$(BENCH) bench

bench-core:             ## the data-plane core against the reference and a plain-Python loop
	$(BENCH) bench/bench_core.py --benchmark-timer=time.process_time

bench-boto:             ## boto3 in-process and over HTTP, against moto and kinesalite
	$(BENCH) bench/bench_boto.py

bench-server:           ## fastkin serve under wrk/h2load next to kinesalite, moto, uvicorn and granian (~5 min)
	PYTHONPATH=src $(PYTHON) bench/bench_server.py

clean:                  ## build products (the compiled core, generated C, caches)
	rm -rf build .hypothesis src/fastkin/_cy/*.so src/fastkin/_cy/core.c src/fastkin/_cy/*.html
