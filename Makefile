# The two commands of the README's Quick start:
#   make demo   set up, then run the main job (real video -> real node over real DDS -> pictures, bag, summary)
#   make test   set up, then lint and run the whole test suite
# Each does its own set-up (scripts/setup_env.sh is idempotent and quick when nothing changed).
SHELL := /bin/bash
ENV := source scripts/env.sh &&

.PHONY: setup demo test lint benchmark clean
setup:
	@./scripts/setup_env.sh

demo: setup
	@$(ENV) python -m petr_ros.ros.demo --output outputs/demo

lint: setup
	@$(ENV) ruff check .

# pytest exits 5 when it collects nothing: make treats that as a failure, as it should.
test: setup
	@$(ENV) ruff check . && python -m pytest -q test

benchmark: setup
	@$(ENV) python benchmarks/benchmark_model.py && python benchmarks/benchmark_node.py

clean:
	rm -rf .build outputs .pytest_cache .ruff_cache
