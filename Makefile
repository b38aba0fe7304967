# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
FLASK = $(VENV)/bin/flask --app app

.PHONY: run test lint install install-dev migrate demo clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime

install-dev: $(VENV)/.dev

migrate: install
	$(FLASK) db upgrade

demo: migrate
	@if $(FLASK) db is-empty; then $(FLASK) demo; else echo "Database already has users; demo data not added (see instance/demo-credentials.txt)."; fi

run: demo
	@echo "Portal on http://$(HOST):$(PORT)/  (Ctrl-C stops it)"
	$(VENV)/bin/gunicorn --workers $(WORKERS) --worker-class gthread --threads 4 --bind $(HOST):$(PORT) --access-logfile - app:app

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install-dev lint
	$(VENV)/bin/pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
