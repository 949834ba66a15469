"""fastrnn convert IN OUT: a torch state_dict file (or any file load() reads) → a fastrnn
file. Exit code 0: written; 2: the input or the output is unusable."""

from __future__ import annotations

import os

from .common import dtype_add, fail, hints_add, model_load


def register(sub) -> None:
    c = sub.add_parser(
        "convert",
        help="convert a torch state_dict file to a fastrnn file",
        description="Reads IN (a torch.save state_dict, read with weights_only=True, or a "
        "safetensors file), infers the configuration from its key names and shapes (with the "
        "hints below where the shapes cannot tell) and writes OUT, a fastrnn safetensors file "
        "that fastrnn.load reads without torch.",
    )
    c.add_argument("input", metavar="IN", help="the file to read")
    c.add_argument("output", metavar="OUT", help="the fastrnn file to write")
    hints_add(c)
    dtype_add(c, "weight precision of OUT: IN's own (default), float32, bf16, int8 or int7")
    c.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    c.set_defaults(func=run)


def run(args) -> int:
    if os.path.exists(args.output) and not args.force:
        return fail("convert", f"{args.output} exists (use --force to overwrite)")
    model, code = model_load("convert", args, args.input)
    if model is None:
        return code
    try:
        model.save(args.output)
    except OSError as e:
        return fail("convert", f"cannot write {args.output}: {e}")
    n = sum(v.size for v in model.state_dict().values())
    print(f"wrote {args.output}: {model!r} ({n} parameters, {os.path.getsize(args.output)} bytes)")
    return 0
