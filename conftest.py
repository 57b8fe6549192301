"""Collection settings for the doctests of src/ (run with the tests: ``--doctest-modules``)."""

# Its examples change process-wide CPU settings; tests/training/test_cpu.py runs them in a fresh process.
collect_ignore = ["src/memevae/training/cpu.py"]
