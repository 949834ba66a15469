"""fastrnn info: version, instruction sets, CPU features, threads, caches, peers."""

from __future__ import annotations

from .common import bytes_text, fail, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "info",
        help="version, instruction set in use and available, CPU features, threads, caches",
        description="Shows fastrnn's version, the instruction set in use and those this CPU can "
        "run, the CPU features fastrnn detected, the thread count, the cache sizes and the "
        "blocking derived from them, and which peers are installed.",
    )
    g = p.add_argument_group("the driver's plan of one call (--plan)")
    g.add_argument(
        "--plan",
        action="store_true",
        help="also show how a call would run: threads, schedule, split, chunk sizes, "
        "ahead projection, workspace",
    )
    g.add_argument(
        "--model",
        metavar="FILE",
        help="the model to plan for (a file fastrnn.load reads; default: LSTM(256, 256))",
    )
    g.add_argument("--batch", type=positive_int, default=1, help="batch rows (default: 1)")
    g.add_argument("--steps", type=positive_int, default=100, help="time steps (default: 100)")
    g.add_argument("--threads", type=positive_int, help="thread cap (default: the budget)")
    p.set_defaults(func=run)


def plan_lines(model, batch: int, steps: int, threads) -> list[str]:
    """The plan of one call as text lines."""
    p = model.plan(batch, steps, num_threads=threads)
    ws = p["workspace_floats"]
    ahead = ", ".join(f"layer {i}: {n} steps" for i, n in enumerate(p["ahead"]) if n) or "none"
    extra = {
        "spans": f", span {p['span']} steps",
        "wavefront": f", tick {p['wave_chunk']} steps",
        "layer-by-layer": "",
    }[p["schedule"]]
    return [
        f"plan           {model!r}, batch {batch}, {steps} steps",
        f"               {p['threads']} thread(s), schedule {p['schedule']}, split {p['split']}"
        f" ({p['panel_threads']} per direction's panels)",
        f"               G_x chunk {p['chunk']} steps{extra}; projected ahead: {ahead}"
        + ("; each step projects its own input" if p["inline_projection"] else ""),
        f"               workspace {bytes_text(4 * ws['total'])} per calling thread "
        f"(G_x {ws['gx'][0] + ws['gx'][1]}, state rows {ws['h']}, sequence "
        f"{ws['seq'][0] + ws['seq'][1]} floats"
        + (f", bf16 weights widened once to {ws['wide']} floats" if p["widen"] else "")
        + ")",
    ]


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
    if args.plan:
        if args.model:
            from .._load import load

            try:
                model = load(args.model)
            except (OSError, ValueError, ImportError) as e:
                return fail("info", str(e))
        else:
            from .._modules import LSTM

            model = LSTM(256, 256, seed=0)
        for line in plan_lines(model, args.batch, args.steps, args.threads):
            print(line)
    return 0
