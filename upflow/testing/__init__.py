"""Helpers shared by upflow's tests and benchmarks (not used at runtime)."""
