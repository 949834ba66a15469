"""The thread pool under ThreadSanitizer: tests/native/pool_stress.cc, built with
-fsanitize=thread from the pool's own sources (csrc/core/thread-pool.cc, threads.cc,
host-openmp.cc) and run as a program, since a TSan-instrumented extension cannot be loaded
into this interpreter. 1, 2 and 8 caller threads make calls whose teams sum arrays between
barriers while the budget flips, and every other call's team sums without barriers, its
caller taking back the shares of helpers not started yet; any data race, a wrong sum, a share
run twice or never, or a token not returned fails.
Skipped without g++ or its TSan runtime."""

from __future__ import annotations

import os
import subprocess

import pytest

from support.common import GXX, REPO, build_native


def tsan_available() -> bool:
    if GXX is None or not (REPO / "csrc" / "core" / "thread-pool.cc").is_file():
        return False
    lib = subprocess.run(
        [GXX, "-print-file-name=libtsan.so"], capture_output=True, text=True, check=False
    )
    return os.path.isabs(lib.stdout.strip()) and os.path.exists(lib.stdout.strip())


@pytest.mark.skipif(not tsan_available(), reason="needs g++ with ThreadSanitizer and csrc/")
def test_pool_under_thread_sanitizer(tmp_path):
    exe = tmp_path / "pool_stress"
    sources = [
        "tests/native/pool_stress.cc",
        "csrc/core/thread-pool.cc",
        "csrc/core/threads.cc",
        "csrc/core/host-openmp.cc",
    ]
    build_native(exe, sources, ["-O1", "-g", "-fsanitize=thread", "-ldl"])
    env = dict(os.environ, TSAN_OPTIONS="halt_on_error=1 exitcode=66")
    run = subprocess.run(
        [str(exe)], capture_output=True, text=True, timeout=300, env=env, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("ok:"), run.stdout
    assert "ThreadSanitizer" not in run.stderr, run.stderr
