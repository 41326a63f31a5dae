# Shortcuts; the README's two commands work without make.
.PHONY: setup repro test lint bench lab
setup: ; bash scripts/setup.sh --dev
repro: ; bash scripts/setup.sh && .venv/bin/dvc repro
test: ; bash scripts/setup.sh --dev && .venv/bin/python -m pytest
lint: ; .venv/bin/python -m ruff check kardia tests benchmarks && .venv/bin/python -m ruff format --check kardia tests benchmarks
bench: ; .venv/bin/python benchmarks/bench_rewards.py && .venv/bin/python benchmarks/bench_judge.py && .venv/bin/python benchmarks/bench_build.py && .venv/bin/python benchmarks/bench_train.py && .venv/bin/python benchmarks/bench_smollm2.py
lab: ; .venv/bin/jupyter lab --allow-root notebooks/
