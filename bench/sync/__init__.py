"""The sync engine alone against PostgreSQL: ``python -m bench.sync`` (docs/benchmarks.md)."""
