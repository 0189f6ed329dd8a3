# fgr — two commands do everything: `make reproduce` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
BASE   := $(VENV)/.fgr-base
DEV    := $(VENV)/.fgr-dev
PROFILE ?= demo
JOBS   ?= 2

.PHONY: install kernel reproduce test lab smoke clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BASE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[serve]'
	$(BIN)/python -m ipykernel install --sys-prefix --name fgr --display-name "Python (fgr)"
	touch $@

$(DEV): $(BASE)
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(BASE)          ## .venv with the package and its Jupyter kernel "Python (fgr)"

kernel: $(BASE)           ## (re)register the kernel
	$(BIN)/python -m ipykernel install --sys-prefix --name fgr --display-name "Python (fgr)"

reproduce: $(BASE)        ## every notebook on the demo profile, then runs/demo/REPORT.md
	$(BIN)/fgr reproduce --profile $(PROFILE)

# The browser test (tests/test_jupyterlab.py) drives Debian's chromium through Playwright; Playwright's
# own browser download (`playwright install`) is never used. Installed once, as root or through sudo.
chromium:                 ## Debian's chromium for the browser test, when missing
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for tests/test_jupyterlab.py"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-liberation; }

test: $(DEV) chromium     ## the test suite, offline
	$(BIN)/python -m pytest -q -n $(JOBS) --durations=15

smoke: $(BASE)            ## every notebook on the tiny smoke profile
	$(BIN)/fgr reproduce --profile smoke

lab: $(BASE)              ## JupyterLab on the notebooks, with the fgr kernel
	$(BIN)/jupyter lab --notebook-dir=notebooks

clean:                    ## remove runs and caches (keeps data/ and .venv)
	rm -rf runs .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
