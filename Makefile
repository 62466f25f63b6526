# Everything a fresh machine needs: `make demo` (runtime only) and `make test` (everything).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
# torch 2.14.1 / torchvision 0.29.1 install from this machine's local wheel store.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: test demo serve bench bench-serve browser clean

$(VENV)/.dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) $(TORCH)
	$(PIP) -e '.[train,export,serve,ray,test,video]'
	touch $@

# LiteRT's converter (litert-torch) pins typing-extensions < 4.13, older than the serve and ray
# extras take: it gets its own venv, and `make test` runs the LiteRT tests there.
$(VENV)-litert/.ok: pyproject.toml
	$(PYTHON) -m venv $(VENV)-litert
	$(VENV)-litert/bin/python -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(VENV)-litert/bin/python -m pip install --quiet --disable-pip-version-check -e '.[litert]' pytest
	touch $@

$(VENV)-demo/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)-demo
	$(VENV)-demo/bin/python -m pip install --quiet --disable-pip-version-check .
	touch $@

test: $(VENV)/.dev $(VENV)-litert/.ok
	$(PY) -m pytest -q
	MOBILEFER_REQUIRE_LITERT=1 $(VENV)-litert/bin/python -m pytest -q tests/test_litert.py

demo: $(VENV)-demo/.runtime
	mkdir -p out/demo
	$(VENV)-demo/bin/mobilefer predict examples/astronaut.jpg --out out/demo --json out/demo/faces.jsonl

# The HTTP service and page on http://127.0.0.1:8000/ from the runtime venv (no PyTorch).
serve: $(VENV)-demo/.runtime
	$(VENV)-demo/bin/python -m pip install --quiet --disable-pip-version-check '.[serve]'
	$(VENV)-demo/bin/mobilefer serve

bench: $(VENV)/.dev
	$(PY) benchmarks/bench_train.py

bench-serve: $(VENV)/.dev
	$(PY) benchmarks/bench_serve.py --clients 32 --duration 60

# Debian's Chromium for the browser tests (root; elsewhere install it your own way).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

clean:
	rm -rf $(VENV) $(VENV)-demo $(VENV)-litert out build *.egg-info
