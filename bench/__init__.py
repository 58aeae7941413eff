"""Accord's whole-stack benchmark harness (`make bench`, `make bench-smoke`).

See docs/benchmarks.md (section "Whole stack") and docs/bench/README.md.
"""
