"""The demo city generator and the demo grading round, for `make run`, tests and benchmarks."""
