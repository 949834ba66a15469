"""The thread budget's sources (csrc/core/threads.h): set_num_threads, then FASTRNN_NUM_THREADS,
then OMP_NUM_THREADS (what Ray, Dask and Spark set per worker), then the CPUs this process may
use: its affinity mask (taskset) capped by its cgroup's CPU quota (v1 and v2, read from
/proc/self/cgroup and /proc/self/mountinfo; fakes of those files stand in for a real cgroup,
which a test cannot make). And threadpoolctl's limits, through fastrnn's controller.

The environment is read once per process, so each source is checked in a fresh interpreter,
on every instruction set (FASTRNN_ISA), where it also runs a 2-thread-sized model and checks
that the budget it reports is the one calls get (Model.plan).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from fastrnn import _core
from support.common import ISAS

THREAD_ENV = ("FASTRNN_NUM_THREADS", "OMP_NUM_THREADS", "FASTRNN_PROC_SELF")

PROBE = """
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fastrnn
import numpy as np
m = fastrnn.LSTM(256, 256, seed=0)
x = np.random.default_rng(0).standard_normal((20, 1, 256), dtype=np.float32)
y = m(x)[0]
print(json.dumps({
    "policy": fastrnn.cpu_info()["threads"],
    "budget": fastrnn.get_num_threads(),
    "threads_for": m.plan(1, 10**4)["threads"],
    "isa": fastrnn.cpu_info()["isa"],
    "warnings": [str(w.message) for w in caught],
    "y0": float(y[-1, 0, 0]),
}))
"""


def probe(isa: str, env: dict | None = None, preexec=None, argv_prefix=()) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in THREAD_ENV}
    base.update(env or {})
    base["FASTRNN_ISA"] = isa
    out = subprocess.run(
        [*argv_prefix, sys.executable, "-c", PROBE],
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=preexec,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["isa"] == isa
    return result


def expected_cpus(policy: dict) -> int:
    cpus = policy["affinity_cpus"]
    if policy["cgroup_cpus"]:
        cpus = min(cpus, max(1, math.ceil(policy["cgroup_cpus"] - 1e-9)))
    return cpus


@pytest.mark.parametrize("isa", ISAS)
def test_default_is_the_cpus_this_process_may_use(isa):
    r = probe(isa)
    p = r["policy"]
    assert p["affinity_cpus"] == len(os.sched_getaffinity(0))
    assert p["cpus"] == expected_cpus(p)
    assert r["budget"] == p["budget"] == p["cpus"]
    assert p["source"] in ("affinity", "cgroup") and p["ignored"] == ""
    assert r["threads_for"] == min(2, p["cpus"])
    assert r["warnings"] == []


@pytest.mark.parametrize("isa", ISAS)
def test_fastrnn_num_threads_wins_over_omp_num_threads(isa):
    r = probe(isa, {"FASTRNN_NUM_THREADS": "1", "OMP_NUM_THREADS": "2"})
    assert (r["budget"], r["policy"]["source"], r["threads_for"]) == (1, "FASTRNN_NUM_THREADS", 1)


@pytest.mark.parametrize("isa", ISAS)
def test_omp_num_threads_first_entry(isa):
    r = probe(isa, {"OMP_NUM_THREADS": " 1 ,2"})
    assert (r["budget"], r["policy"]["source"], r["threads_for"]) == (1, "OMP_NUM_THREADS", 1)


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5", "99999999999"])
def test_a_bad_value_warns_and_the_next_source_counts(value):
    isa = ISAS[-1]
    r = probe(isa, {"FASTRNN_NUM_THREADS": value, "OMP_NUM_THREADS": "1"})
    assert (r["budget"], r["policy"]["source"]) == (1, "OMP_NUM_THREADS")
    assert f"FASTRNN_NUM_THREADS='{value}'" in r["policy"]["ignored"]
    assert len(r["warnings"]) == 1 and "FASTRNN_NUM_THREADS" in r["warnings"][0]
    assert "thread budget is 1 (from OMP_NUM_THREADS)" in r["warnings"][0]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs in the affinity mask")
@pytest.mark.parametrize("isa", ISAS)
def test_affinity_mask(isa):
    cpu = min(os.sched_getaffinity(0))
    taskset = shutil.which("taskset")
    if taskset:  # the command a user would type
        r = probe(isa, argv_prefix=(taskset, "-c", str(cpu)))
    else:
        r = probe(isa, preexec=lambda: os.sched_setaffinity(0, {cpu}))
    p = r["policy"]
    assert p["affinity_cpus"] == 1 and p["cpus"] == 1 and r["budget"] == 1
    assert r["threads_for"] == 1


# Fake /proc/self files for a cgroup. mountinfo: "id parent maj:min root mount-point options
# [optional fields] - fstype source super-options".
def fake_proc(tmp_path, cgroup: str, mounts: list, files: dict) -> str:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    lines = []
    for i, (root, point, fstype, sup) in enumerate(mounts):
        lines.append(
            f"{30 + i} 25 0:{26 + i} {root} {point} rw,nosuid shared:9 - {fstype} cgroup {sup}"
        )
    (proc / "mountinfo").write_text(
        "\n".join(["22 1 8:1 / / rw - ext4 /dev/sda1 rw", *lines]) + "\n"
    )
    for path, text in files.items():
        f = tmp_path / path
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return str(proc)


def test_cgroup_v2_quota_smallest_on_the_path(tmp_path):
    cg = tmp_path / "cg2"
    proc = fake_proc(
        tmp_path,
        "0::/kubepods/pod1/c1\n",
        [("/", str(cg), "cgroup2", "rw")],
        {
            "cg2/cpu.max": "max 100000\n",
            "cg2/kubepods/cpu.max": "400000 100000\n",
            "cg2/kubepods/pod1/cpu.max": "150000 100000\n",  # 1.5 CPUs: the smallest
            "cg2/kubepods/pod1/c1/cpu.max": "max 100000\n",
        },
    )
    assert _core.cgroup_cpu_quota(proc) == pytest.approx(1.5)


def test_cgroup_v1_cpu_controller(tmp_path):
    cg = tmp_path / "cpu,cpuacct"
    proc = fake_proc(
        tmp_path,
        "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n",
        [
            ("/", str(tmp_path / "memory"), "cgroup", "rw,memory"),
            ("/", str(cg), "cgroup", "rw,cpu,cpuacct"),
        ],
        {
            "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "50000\n",
            "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
            "cpu,cpuacct/docker/cpu.cfs_quota_us": "-1\n",
            "cpu,cpuacct/docker/cpu.cfs_period_us": "100000\n",
            "memory/docker/abc/cpu.cfs_quota_us": "1000\n",  # not the cpu controller's
        },
    )
    assert _core.cgroup_cpu_quota(proc) == pytest.approx(0.5)


def test_cgroup_namespace_mount_root(tmp_path):
    # Inside a container the hierarchy's root mounted may be the container's own cgroup.
    cg = tmp_path / "cg"
    proc = fake_proc(
        tmp_path,
        "0::/pod/c1/sub\n",
        [("/pod/c1", str(cg), "cgroup2", "rw")],
        {"cg/cpu.max": "300000 100000\n", "cg/sub/cpu.max": "200000 100000\n"},
    )
    assert _core.cgroup_cpu_quota(proc) == pytest.approx(2.0)


def test_cgroup_root_is_a_path_prefix_not_a_string_prefix(tmp_path):
    # Mount root "/a" does not hold "/ab" (it used to crash the policy: resize(npos)).
    cg = tmp_path / "cg"
    proc = fake_proc(
        tmp_path,
        "0::/ab\n",
        [("/a", str(cg), "cgroup2", "rw")],
        {"cg/cpu.max": "200000 100000\n", "cg/b/cpu.max": "50000 100000\n"},
    )
    assert _core.cgroup_cpu_quota(proc) == pytest.approx(2.0)


def test_no_quota_anywhere(tmp_path):
    cg = tmp_path / "cg"
    proc = fake_proc(
        tmp_path, "0::/\n", [("/", str(cg), "cgroup2", "rw")], {"cg/cpu.max": "max 100000\n"}
    )
    assert _core.cgroup_cpu_quota(proc) is None
    assert _core.cgroup_cpu_quota(str(tmp_path / "missing")) is None


@pytest.mark.parametrize("isa", ISAS)
def test_cgroup_quota_caps_the_default(isa, tmp_path):
    cg = tmp_path / "cg"
    proc = fake_proc(
        tmp_path,
        "0::/job\n",
        [("/", str(cg), "cgroup2", "rw")],
        {"cg/job/cpu.max": "100000 100000\n"},
    )
    r = probe(isa, {"FASTRNN_PROC_SELF": proc})
    p = r["policy"]
    assert p["cgroup_cpus"] == pytest.approx(1.0)
    assert (p["cpus"], r["budget"], r["threads_for"]) == (1, 1, 1)
    assert p["source"] == ("cgroup" if p["affinity_cpus"] > 1 else "affinity")


SET_BEATS_ENV = """
import fastrnn
assert fastrnn.get_num_threads() == 1
fastrnn.set_num_threads(2)
p = fastrnn.cpu_info()["threads"]
assert (p["budget"], p["source"]) == (2, "set_num_threads"), p
"""


def test_set_num_threads_beats_the_environment():
    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV}
    env["FASTRNN_NUM_THREADS"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", SET_BEATS_ENV],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr


THREADPOOLCTL = """
import json, threadpoolctl, fastrnn, numpy as np
m = fastrnn.LSTM(256, 256, seed=0)
x = np.random.default_rng(0).standard_normal((20, 1, 256), dtype=np.float32)
fastrnn.set_num_threads(2)
ref = m(x)[0]
info = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "fastrnn"]
assert len(info) == 1 and info[0]["num_threads"] == 2, info
assert info[0]["version"] == fastrnn.__version__, info
with threadpoolctl.threadpool_limits(1):
    assert fastrnn.get_num_threads() == 1
    assert m.plan(1, 10**4)["threads"] == 1
    assert np.array_equal(m(x)[0], ref)
assert fastrnn.get_num_threads() == 2
with threadpoolctl.threadpool_limits(limits=1, user_api="fastrnn"):
    assert fastrnn.get_num_threads() == 1
assert fastrnn.get_num_threads() == 2
ctl = threadpoolctl.ThreadpoolController()
with ctl.select(user_api="fastrnn").limit(limits=1):
    assert fastrnn.get_num_threads() == 1
print("ok")
"""


@pytest.mark.parametrize("isa", ISAS)
def test_threadpoolctl_limits_fastrnn(isa):
    pytest.importorskip("threadpoolctl", minversion="3.5")
    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV}
    env["FASTRNN_ISA"] = isa
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(THREADPOOLCTL)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
