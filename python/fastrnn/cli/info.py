"""fastrnn info: version, instruction sets, CPU features, threads, caches, peers."""

from __future__ import annotations

from .common import bytes_text


def register(sub) -> None:
    p = sub.add_parser(
        "info",
        help="version, instruction set in use and available, CPU features, threads, caches",
        description="Shows fastrnn's version, the instruction set in use and those this CPU can "
        "run, the CPU features fastrnn detected, the thread count, the cache sizes and the "
        "blocking derived from them, and which peers are installed.",
    )
    p.set_defaults(func=run)


def _caches_lines(caches: dict, blocking: dict) -> list[str]:
    def level(name: str, key: str) -> str:
        shared = caches[f"{key}_shared_by"]
        by = "" if shared is None else f" ({shared} CPU{'s' if shared > 1 else ''})"
        return f"{name} {bytes_text(caches[key])}{by}"

    near = "the L3" if blocking["near_cache"] == "l3" else "each core's L2 (per thread)"
    l1d, l2, l3 = level("L1d", "l1d"), level("L2", "l2"), level("L3", "l3")
    gx, span = bytes_text(4 * blocking["gx_chunk_floats"]), bytes_text(4 * blocking["span_floats"])
    large = bytes_text(4 * blocking["large_w_ih_floats"])
    ahead = bytes_text(blocking["ahead_max_weight_bytes"])
    return [
        f"caches         {l1d}, {l2}, {l3} per instance, from {caches['source']}",
        "               (FASTRNN_CACHE_L1D / _L2 / _L3 to override: bytes, or 512K, 2M)",
        f"blocking       G_x chunk {gx}, layer span {span}, weights kept in {near}:",
        f"               chunks grow from a W_ih of {large}, batch 1 projects ahead up to {ahead}",
    ]


def run(args) -> int:
    from .._runtime import cpu_info

    info = cpu_info()
    from .._bench.machine import machine_info

    machine = machine_info()
    features = ", ".join(k for k, v in info["features"].items() if v) or "none"
    print(f"fastrnn        {info['version']}")
    print(f"cpu            {machine['cpu']}")
    print(f"isa in use     {info['isa']}   (FASTRNN_ISA=scalar|avx2|avx512|neon to force another)")
    print(f"isa available  {', '.join(info['available'])}")
    print(f"cpu features   {features}")
    t = info["tiles"]
    print(
        f"kernel tiles   GEMM {t['gemm']}, step {t['step']} (batch 1: {t['step_batch1']}), "
        f"rows x floats; {t['vector_floats']} floats per register"
    )
    th = info["threads"]
    quota = f", cgroup quota {th['cgroup_cpus']:g} CPUs" if th["cgroup_cpus"] else ""
    print(
        f"threads        budget {th['budget']} (from {th['source']}); CPUs this process may "
        f"use {th['cpus']} (affinity {th['affinity_cpus']}{quota})"
    )
    if th["ignored"]:
        print(f"               ignored: {th['ignored']}")
    for line in _caches_lines(info["caches"], info["blocking"]):
        print(line)
    print(f"python, numpy  {machine['python']}, {machine['numpy']}")
    for peer, version in machine["peers"].items():
        if peer != "fastrnn":
            print(f"{peer:<15}{version or 'not installed'}")
    return 0
