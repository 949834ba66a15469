"""fastrnn verify MODEL_FILE: a fastrnn file or torch state_dict against torch and float64.
Exit code 0: as accurate as torch; 1: not; 2: the file or the environment is unusable."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from .common import fail, hints_add, model_load


def register(sub) -> None:
    p = sub.add_parser(
        "verify",
        help="check a model file against torch and float64 (the accuracy contract)",
        description="Loads MODEL_FILE (a fastrnn file, a safetensors or a torch state_dict), "
        "builds the same torch module from its configuration and weights, runs it, a float64 "
        "copy of it and fastrnn on a random input and prints the parity report: each one's "
        "error against float64 and fastrnn - torch. Exit code 0: fastrnn is as accurate as "
        "torch (its error at most 2x torch's, or under the tolerance); 1: not; 2: the file "
        "could not be used. Needs torch.",
    )
    p.add_argument("model_file", metavar="MODEL_FILE", help="the file to check")
    hints_add(p)
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-5,
        help="absolute floor: an error against float64 up to it always passes (default: 1e-5)",
    )
    p.add_argument(
        "--steps", type=int, default=16, help="time steps of the random input (16; layers only)"
    )
    p.add_argument(
        "--batch", type=int, default=2, help="batch of the random input (2; layers only)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random input (0)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from .._verify import verify

    if args.steps < 1 or args.batch < 1:
        return fail(
            "verify", f"--steps and --batch must be >= 1, got {args.steps} and {args.batch}"
        )
    model, code = model_load("verify", args, args.model_file)
    if model is None:
        return code
    try:
        from .._load import to_torch

        module = to_torch(model)
    except ImportError:
        return fail("verify", "needs torch (pip install torch) to compare against")
    config = model.config
    rng = np.random.default_rng(args.seed)
    if config.is_cell:
        x = None  # verify's own input for cells: a batch of 2 with a random state
    elif config.batch_first:
        x = rng.standard_normal((args.batch, args.steps, config.input_size))
    else:
        x = rng.standard_normal((args.steps, args.batch, config.input_size))
    report = verify(module, x, tolerance=args.tolerance, model=model, seed=args.seed)
    if args.json:
        doc = dataclasses.asdict(report)
        doc["verdict"] = report.verdict()
        print(json.dumps(doc, indent=2))
    else:
        print(f"{args.model_file}: {model!r}")
        print(report)
    return 0 if report.ok else 1
