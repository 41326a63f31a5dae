# Shortcuts; the README's two commands work without make.
.PHONY: setup repro test lint bench repro-measured lab
setup: ; bash scripts/setup.sh --dev
repro: ; bash scripts/setup.sh && .venv/bin/dvc repro
test: ; bash scripts/setup.sh --dev && .venv/bin/python -m pytest
lint: ; .venv/bin/python -m ruff check kardia tests benchmarks && .venv/bin/python -m ruff format --check kardia tests benchmarks
lab: ; .venv/bin/jupyter lab --allow-root notebooks/
# README blocks from what each benchmark printed (NAME:SCRIPT; results/benchmarks/NAME.{txt,json})
BENCH := rewards:bench_rewards judge:bench_judge build:bench_build train:bench_train smollm2:bench_smollm2 label:label_baseline
bench: ; for b in $(BENCH); do .venv/bin/python benchmarks/record.py $${b%%:*} -- .venv/bin/python benchmarks/$${b#*:}.py || exit $$?; done
# dvc repro with its wall time and peak memory over the process tree (README block bench-repro)
repro-measured: ; .venv/bin/python benchmarks/record.py repro -- .venv/bin/python benchmarks/peak_memory.py --every 3 -- .venv/bin/dvc repro
