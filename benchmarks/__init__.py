"""Benchmarks: ``python -m benchmarks`` compares dsg_lib with raw drivers, SQLAlchemy and peers."""
