"""Shared setup of the pytest-benchmark suite.

- ``--bench-threads N`` (or ``$RNNFAST_BENCH_THREADS``; default 2): the thread count of
  rnnfast and of PyTorch for the whole session, available as the ``bench_threads`` fixture.
- An in-place build in this checkout is measured in preference to an installed rnnfast.
- The saved benchmark JSON carries the CPU model, versions and thread count.
"""
import pytest

import _env

_env.use_inplace_build()


def pytest_addoption(parser):
    parser.addoption(
        "--bench-threads",
        action="store",
        default=None,
        help=f"threads for rnnfast and PyTorch (default: ${_env.THREADS_ENV} or {_env.DEFAULT_THREADS})",
    )


def _threads(config) -> int:
    return _env.threads_from_env(config.getoption("--bench-threads"))


@pytest.fixture(scope="session", autouse=True)
def bench_threads(request):
    """The thread count every benchmark of the session runs with (already applied)."""
    n = _threads(request.config)
    _env.set_threads(n)
    return n


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["rnnfast_bench"] = dict(_env.machine_info(), threads=_threads(config))
