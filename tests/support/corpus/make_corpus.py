"""Writes the seed corpus of the model-file fuzz harness (tests/support/fuzz_load.py) into this
folder: small valid files of every kind fastrnn.load reads, a few KB in total.

    python tests/support/corpus/make_corpus.py [DIR]   # needs fastrnn, safetensors, torch
                                               # DIR: where to write (default: here)

Seeds (tiny sizes: I = 2, H = 3, so that every mutation hits a structure, not bulk data):
fastrnn files (model.save) for each class and option family, a plain safetensors
state_dict with a key prefix (configuration inferred), and a torch.save state_dict.
torch's zip archive holds a random serialization id, so regenerated .pt bytes differ from
the committed ones; both are equally valid seeds.
"""

from __future__ import annotations

import os
import sys

import numpy as np

import fastrnn

HERE = os.path.dirname(os.path.abspath(__file__))

FASTRNN_SEEDS = {
    "lstm-2layers.safetensors": lambda: fastrnn.LSTM(2, 3, num_layers=2, seed=1),
    "lstm-proj-bi.safetensors": lambda: fastrnn.LSTM(2, 3, proj_size=2, bidirectional=True, seed=2),
    "gru-bi-nobias.safetensors": lambda: fastrnn.GRU(2, 3, bias=False, bidirectional=True, seed=3),
    "rnn-relu-bf.safetensors": lambda: fastrnn.RNN(
        2, 3, nonlinearity="relu", batch_first=True, seed=4
    ),
    "lstmcell.safetensors": lambda: fastrnn.LSTMCell(2, 3, seed=5),
    "rnncell-tanh.safetensors": lambda: fastrnn.RNNCell(2, 3, seed=6),
}


def main(out: str = HERE) -> None:
    for name, make in FASTRNN_SEEDS.items():
        make().save(os.path.join(out, name))

    # A plain safetensors state_dict (no fastrnn metadata), under a module prefix, with one
    # unrelated tensor beside it: load() infers a GRU(2, 3) from the names and shapes.
    from safetensors.numpy import save_file

    sd = {f"encoder.rnn.{k}": v for k, v in fastrnn.GRU(2, 3, seed=7).state_dict().items()}
    sd["encoder.fc.weight"] = np.ones((1, 3), np.float32)
    save_file(sd, os.path.join(out, "plain-gru-prefix.safetensors"))

    # A torch.save state_dict (zip format), read with torch.load(weights_only=True).
    import torch

    torch.manual_seed(8)
    torch.save(torch.nn.LSTM(2, 3).state_dict(), os.path.join(out, "torch-lstm.pt"))


if __name__ == "__main__":
    main(*sys.argv[1:2])
