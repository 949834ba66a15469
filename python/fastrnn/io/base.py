"""What every reader shares: the error type that names the file, and short key lists."""

from __future__ import annotations

import os

# torch.save's formats: a zip archive, or (legacy) a pickle starting with its magic number.
TORCH_MAGICS = (b"PK\x03\x04", b"\x80\x02\x8a\x0a")


class BadFile(ValueError):
    """A file fastrnn cannot read: the message is "<path>: <what is wrong>"."""

    def __init__(self, path, problem: str) -> None:
        super().__init__(f"{os.fspath(path)}: {problem}")


def short(keys: list) -> str:
    """A list of keys for a message, cut at 500 characters (a file may hold huge names)."""
    text = repr(keys)
    return text if len(text) <= 500 else text[:500] + "...]"
