"""What the commands share: exit-code messages, model loading with the hints, argument
types, byte sizes."""

from __future__ import annotations

import argparse
import sys

from .._config import MODES


def fail(command: str, message: str) -> int:
    """Prints `fastrnn <command>: <message>` on stderr; returns 2, the exit code of an
    unusable file or environment."""
    print(f"fastrnn {command}: {message}", file=sys.stderr)
    return 2


def hints_add(p: argparse.ArgumentParser) -> None:
    """--mode, --batch-first, --prefix: what a file without fastrnn metadata cannot say."""
    g = p.add_argument_group("configuration hints (for files without fastrnn metadata)")
    g.add_argument(
        "--mode",
        choices=MODES,
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
    p.add_argument(
        "--node",
        help="ONNX files: the recurrent part, by a node name or an output name (needed when "
        "the file holds several)",
    )
    p.add_argument(
        "--layer",
        help="Keras files: the recurrent layer (needed when the model holds several parts)",
    )


def model_load(command: str, args, path: str):
    """(model, 0), or (None, 2) after printing why the file cannot be used."""
    from .._load import load

    try:
        model = load(
            path,
            mode=args.mode,
            batch_first=args.batch_first,
            prefix=args.prefix,
            layer=args.layer,
            node=args.node,
            dtype=getattr(args, "dtype", None),
        )
        return model, 0
    except (OSError, ValueError, ImportError) as e:
        return None, fail(command, str(e))


def dtype_add(p, help: str, choices=("float32", "bf16", "int8", "int7")) -> None:
    """The --dtype option: the weight precision (fastrnn.quantize; docs/precision.md)."""
    p.add_argument(
        "--dtype",
        choices=choices,
        default=None,
        help=f"{help} (fastrnn.quantize; error bounds in docs/precision.md)",
    )


def positive_int(text: str) -> int:
    """An argparse type: a positive integer."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def bytes_text(n: int) -> str:
    """1048576 → '1 MiB', 49152 → '48 KiB', 1500 → '1500 B'."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % (size // 16) == 0:
            return f"{n / size:g} {unit}"
    return f"{n} B"
