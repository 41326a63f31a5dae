# Shortcuts; the README's two commands work without make.
.PHONY: setup repro test lint bench lab
setup: ; bash scripts/setup.sh --dev
repro: ; bash scripts/setup.sh && .venv/bin/dvc repro
test: ; bash scripts/setup.sh --dev && .venv/bin/python -m pytest
lint: ; .venv/bin/python -m ruff check kardia tests benchmarks && .venv/bin/python -m ruff format --check kardia tests benchmarks
bench: ; for b in rewards judge build train smollm2; do .venv/bin/python benchmarks/record.py $$b -- .venv/bin/python benchmarks/bench_$$b.py || exit $$?; done  # README blocks from what each printed
lab: ; .venv/bin/jupyter lab --allow-root notebooks/
