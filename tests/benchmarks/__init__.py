"""The fan-out benchmark (issue 8): `python -m tests.benchmarks --help`. Not part of the test run."""
