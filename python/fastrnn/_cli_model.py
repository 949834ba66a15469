"""The model-file subcommands of the `fastrnn` command line:

    fastrnn verify MODEL_FILE   check a fastrnn file or torch state_dict against torch
    fastrnn convert IN OUT      a torch state_dict file (or any file load() reads) → a fastrnn file

Each handler returns the process exit code: 0 ok, 1 verify found a difference above the
tolerance, 2 the file or the environment is unusable (message on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

import numpy as np

_MODES = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")


def _add_hints(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration hints (for files without fastrnn metadata)")
    g.add_argument(
        "--mode",
        choices=_MODES,
        help="the cell type; needed for a torch RNN (its nonlinearity is not in the "
        "weights), otherwise inferred from the gate rows and checked",
    )
    g.add_argument(
        "--batch-first",
        action="store_true",
        default=None,
        help="the model takes (B, T, I) input (not stored in a torch state_dict)",
    )
    g.add_argument(
        "--prefix", help="key prefix of the RNN when the file holds several, e.g. 'encoder.rnn.'"
    )


def add_subcommands(subparsers) -> None:
    """Registers `verify` and `convert` on an argparse subparsers object; each sets
    `func(args) -> exit code`."""
    p = subparsers.add_parser(
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
    _add_hints(p)
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
    p.set_defaults(func=run_verify)

    c = subparsers.add_parser(
        "convert",
        help="convert a torch state_dict file to a fastrnn file",
        description="Reads IN (a torch.save state_dict, read with weights_only=True, or a "
        "safetensors file), infers the configuration from its key names and shapes (with the "
        "hints below where the shapes cannot tell) and writes OUT, a fastrnn safetensors file "
        "that fastrnn.load reads without torch.",
    )
    c.add_argument("input", metavar="IN", help="the file to read")
    c.add_argument("output", metavar="OUT", help="the fastrnn file to write")
    _add_hints(c)
    c.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    c.set_defaults(func=run_convert)


def _fail(command: str, message: str) -> int:
    print(f"fastrnn {command}: {message}", file=sys.stderr)
    return 2


def _load(command: str, args, path: str):
    """(model, 0), or (None, 2) after printing why the file cannot be used."""
    from ._io import load

    try:
        return load(path, mode=args.mode, batch_first=args.batch_first, prefix=args.prefix), 0
    except (OSError, ValueError, ImportError) as e:
        return None, _fail(command, str(e))


def run_verify(args) -> int:
    from ._io import config_of
    from ._verify import verify

    if args.steps < 1 or args.batch < 1:
        return _fail(
            "verify", f"--steps and --batch must be >= 1, got {args.steps} and {args.batch}"
        )
    model, code = _load("verify", args, args.model_file)
    if model is None:
        return code
    try:
        from ._torch import to_torch

        module = to_torch(model)
    except ImportError:
        return _fail("verify", "needs torch (pip install torch) to compare against")
    cfg = config_of(model)
    rng = np.random.default_rng(args.seed)
    if cfg["class"].endswith("Cell"):
        x = None  # verify's own input for cells: a batch of 2 with a random state
    elif cfg["batch_first"]:
        x = rng.standard_normal((args.batch, args.steps, cfg["input_size"]))
    else:
        x = rng.standard_normal((args.steps, args.batch, cfg["input_size"]))
    report = verify(module, x, tolerance=args.tolerance, model=model, seed=args.seed)
    if args.json:
        doc = dataclasses.asdict(report)
        doc["verdict"] = report.verdict()
        print(json.dumps(doc, indent=2))
    else:
        print(f"{args.model_file}: {model!r}")
        print(report)
    return 0 if report.ok else 1


def run_convert(args) -> int:
    if os.path.exists(args.output) and not args.force:
        return _fail("convert", f"{args.output} exists (use --force to overwrite)")
    model, code = _load("convert", args, args.input)
    if model is None:
        return code
    try:
        model.save(args.output)
    except OSError as e:
        return _fail("convert", f"cannot write {args.output}: {e}")
    n = sum(v.size for v in model.state_dict().values())
    print(f"wrote {args.output}: {model!r} ({n} parameters, {os.path.getsize(args.output)} bytes)")
    return 0
