"""pytest configuration for bench/: without pytest-benchmark (not in the `test` extra), the
timed tests skip with a note instead of failing on a missing `benchmark` fixture, so that
`pytest bench` always runs (and collects) after any install."""

import pytest


class _NoBenchmark:
    """Stands in for pytest-benchmark's plugin when it is absent or disabled."""

    @pytest.fixture
    def benchmark(self):
        pytest.skip("pytest-benchmark is not installed (pip install pytest-benchmark)")


def pytest_configure(config):
    if not config.pluginmanager.hasplugin("benchmark"):
        config.pluginmanager.register(_NoBenchmark(), "fastrnn-no-benchmark")
