# Everything a fresh machine needs: `make demo` (runtime only) and `make test` (everything).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
# torch 2.14.1 / torchvision 0.29.1 install from this machine's local wheel store.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: test demo serve bench bench-serve browser clean wheel-test

$(VENV)/.dev: pyproject.toml packages/fer2013/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) $(TORCH)
	$(PIP) -e '.[train,export,serve,ray,test,video]' -e ./packages/fer2013
	touch $@

# LiteRT's converter (litert-torch) pins typing-extensions < 4.13, older than the serve and ray
# extras take: it gets its own venv, and `make test` runs the LiteRT tests there.
$(VENV)-litert/.ok: pyproject.toml
	$(PYTHON) -m venv $(VENV)-litert
	$(VENV)-litert/bin/python -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(VENV)-litert/bin/python -m pip install --quiet --disable-pip-version-check -e '.[litert]' pytest \
		-e ./packages/fer2013
	touch $@

# The runtime venv holds what a user gets: the wheels built from this tree (mobilefer and
# mobilefer-fer2013), installed as a package index would install them, without PyTorch.
WHEEL_MAX_MB := 40
$(VENV)-demo/.runtime: pyproject.toml packages/fer2013/pyproject.toml $(shell git ls-files src packages 2>/dev/null)
	test -d $(VENV)-demo || $(PYTHON) -m venv $(VENV)-demo
	rm -rf dist
	$(VENV)-demo/bin/python -m pip wheel --quiet --disable-pip-version-check --no-deps -w dist . ./packages/fer2013
	@size=$$(du -m dist/mobilefer-[0-9]*.whl | cut -f1); echo "mobilefer wheel: $$size MB"; \
		test $$size -le $(WHEEL_MAX_MB) || (echo "the wheel is over $(WHEEL_MAX_MB) MB" && exit 1)
	$(VENV)-demo/bin/python -m pip install --quiet --disable-pip-version-check --force-reinstall \
		"$$(ls dist/mobilefer-[0-9]*.whl)[serve,plot]" dist/mobilefer_fer2013-*.whl pytest scikit-image httpx
	touch $@

# The torch-free tests against the installed wheels, not the source tree: a file missing from a
# wheel fails here (the bundled CenterFace as installed, not the tree's).
wheel-test: $(VENV)-demo/.runtime
	cd /tmp && $(CURDIR)/$(VENV)-demo/bin/python -c "import importlib.util as u, mobilefer; \
		assert 'site-packages' in mobilefer.__file__ and u.find_spec('torch') is None, mobilefer.__file__"
	MOBILEFER_CENTERFACE= $(VENV)-demo/bin/python -m pytest -q -p no:cacheprovider tests/test_api_inputs.py \
		tests/test_pose.py tests/test_explain.py tests/test_serve.py tests/test_live.py tests/test_video.py \
		tests/test_onnx_shapes.py tests/test_blazeface.py tests/test_uncertain.py tests/test_plan_trace.py \
		tests/test_prior_correction.py -m "not slow"

test: $(VENV)/.dev $(VENV)-litert/.ok wheel-test
	$(PY) -m pytest -q
	MOBILEFER_REQUIRE_LITERT=1 $(VENV)-litert/bin/python -m pytest -q tests/test_litert.py

demo: $(VENV)-demo/.runtime
	mkdir -p out/demo
	$(VENV)-demo/bin/mobilefer predict examples/astronaut.jpg --out out/demo --json out/demo/faces.jsonl

# The HTTP service and page on http://127.0.0.1:8000/ from the runtime venv (no PyTorch).
serve: $(VENV)-demo/.runtime
	$(VENV)-demo/bin/mobilefer serve

bench: $(VENV)/.dev
	$(PY) benchmarks/bench_train.py

bench-serve: $(VENV)/.dev
	$(PY) benchmarks/bench_serve.py --clients 32 --duration 60

# Debian's Chromium and Node.js for the page's tests (root; elsewhere install them your own way).
browser:
	command -v chromium >/dev/null && command -v node >/dev/null || (apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium nodejs)

clean:
	rm -rf $(VENV) $(VENV)-demo $(VENV)-litert out build dist *.egg-info
