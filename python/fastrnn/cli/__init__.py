"""The `fastrnn` command line.

    fastrnn                      same as `fastrnn bench`: the default model against every peer
    fastrnn bench [--all | --workload NAME ...] [--threads 1 2] [--json PATH] [--plot PNG]
    fastrnn info                 version, instruction sets, CPU features, threads, caches
    fastrnn verify MODEL_FILE    a fastrnn file or torch state_dict against torch
    fastrnn convert IN OUT       a torch state_dict file to a fastrnn file
    fastrnn predict MODEL IN -o OUT   a model over a file of sequences, in batches

One module per command, one convention: `register(subparsers)` declares the command's
arguments and sets `func=run`; `run(args)` returns the exit code (0 ok, 1 a check failed,
2 the input or environment is unusable, with the reason on stderr). A command imports what
it needs inside `run`, so `fastrnn --help` loads no runner and no peer. Long work reports
progress on stderr; results go to stdout. To add a command, write its module and list it in
COMMANDS.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# The commands, in the order `--help` lists them (`fastrnn` alone runs `bench`).
COMMANDS = ("bench", "info", "verify", "convert", "predict")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastrnn",
        description="fastrnn: fast CPU inference of LSTM, GRU and RNN layers with PyTorch's "
        "semantics. Without a command, runs `fastrnn bench`.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["bench"])
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
