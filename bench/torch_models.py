"""Whole torch models of the kinds people put recurrent layers in, for fastrnn.accelerate:
bench/accelerate.py times them (at realistic sizes) and tests/api/test_accelerate.py checks
their parity and training (at small ones). Random weights: nothing is downloaded.

    text_classifier  packed variable-length batches (enforce_sorted=False), 2-layer BiLSTM
    deepspeech       torchaudio.models.DeepSpeech's structure: bidirectional ReLU RNN
    conv_gru         a CNN front end, a 2-layer GRU, a per-frame head
    forecaster       darts' RNNModel predict loop: one GRU call per horizon step
    seq2seq          a BiLSTM encoder, an attention decoder stepping an LSTMCell
    subclass         a pytorch-forecasting style LSTM subclass with a lengths argument

cases(size) gives each as (name, what, model factory, inputs, fast calls per forward).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class LengthsLSTM(nn.LSTM):
    """As pytorch-forecasting's LSTM: a lengths argument, packs and calls super().forward."""

    def forward(self, x, hx=None, lengths=None, enforce_sorted=True):
        if lengths is None:
            return super().forward(x, hx)
        packed = pack_padded_sequence(
            x, lengths.cpu(), batch_first=self.batch_first, enforce_sorted=enforce_sorted
        )
        out, state = super().forward(packed, hx)
        out, _ = pad_packed_sequence(out, batch_first=self.batch_first, total_length=x.shape[1])
        return out, state


class TextClassifier(nn.Module):
    """Packed variable-length batches (enforce_sorted=False) through a 2-layer BiLSTM."""

    def __init__(self, vocab=100, embed=32, hidden=48, classes=4):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.lstm = nn.LSTM(embed, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.out = nn.Linear(2 * hidden, classes)

    def forward(self, tokens, lengths):
        packed = pack_padded_sequence(self.embed(tokens), lengths, True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.out(torch.cat([h[-2], h[-1]], dim=1))


class DeepSpeech(nn.Module):
    """torchaudio.models.DeepSpeech's structure: 3 clipped linear layers, a bidirectional
    ReLU RNN whose directions are summed, 2 linear layers, log-softmax."""

    def __init__(self, n_feature=20, n_hidden=64, n_class=10):
        super().__init__()
        self.n_hidden = n_hidden
        self.fc1 = nn.Linear(n_feature, n_hidden)
        self.fc2 = nn.Linear(n_hidden, n_hidden)
        self.fc3 = nn.Linear(n_hidden, n_hidden)
        self.bi_rnn = nn.RNN(n_hidden, n_hidden, nonlinearity="relu", bidirectional=True)
        self.fc4 = nn.Linear(n_hidden, n_hidden)
        self.out = nn.Linear(n_hidden, n_class)

    def forward(self, x):  # (N, 1, T, F)
        for fc in (self.fc1, self.fc2, self.fc3):
            x = nn.functional.hardtanh(fc(x), 0, 20)
        x = x.squeeze(1).transpose(0, 1)  # (T, N, H)
        x, _ = self.bi_rnn(x)
        x = x[:, :, : self.n_hidden] + x[:, :, self.n_hidden :]
        x = nn.functional.hardtanh(self.fc4(x), 0, 20)
        return nn.functional.log_softmax(self.out(x), dim=2).transpose(0, 1)


class ConvGRU(nn.Module):
    """A CNN front end over features, a 2-layer GRU, a per-frame head."""

    def __init__(self, features=12, channels=24, hidden=40):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(features, channels, 5, padding=2), nn.ReLU())
        self.gru = nn.GRU(channels, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, 3)

    def forward(self, x):  # (N, T, features)
        y = self.conv(x.transpose(1, 2)).transpose(1, 2)
        return self.head(self.gru(y)[0])


class Forecaster(nn.Module):
    """darts' RNNModel predict loop: encode the history, then one GRU step per horizon
    step, feeding each prediction back with the carried state."""

    def __init__(self, hidden=25, horizon=6):
        super().__init__()
        self.horizon = horizon
        self.rnn = nn.GRU(1, hidden, num_layers=2, batch_first=True)
        self.fc = nn.Linear(hidden, 1)

    def forward(self, history):
        y, h = self.rnn(history)
        step = self.fc(y[:, -1:])
        outputs = [step]
        for _ in range(self.horizon - 1):
            y, h = self.rnn(step, h)
            step = self.fc(y)
            outputs.append(step)
        return torch.cat(outputs, dim=1)


class Seq2Seq(nn.Module):
    """A BiLSTM encoder and an attention decoder stepping an LSTMCell (teacher forcing)."""

    def __init__(self, vocab=40, embed=16, hidden=32):
        super().__init__()
        self.src_embed = nn.Embedding(vocab, embed)
        self.tgt_embed = nn.Embedding(vocab, embed)
        self.encoder = nn.LSTM(embed, hidden, bidirectional=True, batch_first=True)
        self.bridge = nn.Linear(2 * hidden, hidden)
        self.cell = nn.LSTMCell(embed + 2 * hidden, hidden)
        self.attn = nn.Linear(hidden, 2 * hidden)
        self.out = nn.Linear(3 * hidden, vocab)

    def forward(self, src, tgt):
        memory, _ = self.encoder(self.src_embed(src))  # (N, S, 2 hidden)
        h = torch.tanh(self.bridge(memory.mean(1)))
        c = torch.zeros_like(h)
        context = memory.mean(1)
        logits = []
        for t in range(tgt.shape[1]):
            h, c = self.cell(torch.cat([self.tgt_embed(tgt[:, t]), context], 1), (h, c))
            weights = torch.softmax(torch.bmm(memory, self.attn(h).unsqueeze(2)), dim=1)
            context = (weights * memory).sum(1)
            logits.append(self.out(torch.cat([h, context], 1)))
        return torch.stack(logits, 1)


class Subclassed(nn.Module):
    """A pytorch-forecasting style LSTM subclass with a lengths argument, in a model."""

    def __init__(self, features=6, hidden=20):
        super().__init__()
        self.rnn = LengthsLSTM(features, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x, lengths):
        y, _ = self.rnn(x, lengths=lengths, enforce_sorted=False)
        return self.head(y)


def _lengths(g, batch: int, T: int):
    """Random lengths in [T/4, T], the longest T, and token ids padded with 0 beyond them."""
    lengths = torch.randint(max(1, T // 4), T + 1, (batch,), generator=g)
    lengths[0] = T
    return lengths


def _padded_tokens(g, vocab: int, lengths, T: int):
    tokens = torch.randint(1, vocab, (len(lengths), T), generator=g)
    tokens[torch.arange(T)[None, :] >= lengths[:, None]] = 0
    return tokens


def cases(size: str = "small", seed: int = 11) -> list[tuple]:
    """(name, what, model factory, inputs, fast calls per forward) for each model; size
    "small" (tests: seconds on any CPU) or "bench" (sizes of real deployments, batch 1 where
    they serve one request at a time)."""
    g = torch.Generator().manual_seed(seed)
    if size == "small":
        lengths = torch.tensor([7, 12, 3, 12, 9])
        tokens = _padded_tokens(g, 100, lengths, 12)
        return [
            ("text_classifier", "", TextClassifier, (tokens, lengths), 1),
            ("deepspeech", "", DeepSpeech, (torch.randn(2, 1, 30, 20, generator=g),), 1),
            ("conv_gru", "", ConvGRU, (torch.randn(3, 25, 12, generator=g),), 1),
            ("forecaster", "", Forecaster, (torch.randn(4, 24, 1, generator=g),), 6),
            (
                "seq2seq",
                "",
                Seq2Seq,
                (
                    torch.randint(0, 40, (3, 8), generator=g),
                    torch.randint(0, 40, (3, 5), generator=g),
                ),
                6,
            ),
            ("subclass", "", Subclassed, (torch.randn(5, 12, 6, generator=g), lengths), 1),
        ]
    if size != "bench":
        raise ValueError(f"size must be 'small' or 'bench', got {size!r}")
    lengths = _lengths(g, 16, 64)
    sub_lengths = _lengths(g, 16, 50)
    return [
        (
            "text_classifier",
            "embedding 20000x128 -> 2-layer BiLSTM 256 (packed, enforce_sorted=False) -> "
            "linear 4; B=16, lengths 16..64",
            lambda: TextClassifier(20000, 128, 256, 4),
            (_padded_tokens(g, 20000, lengths, 64), lengths),
            1,
        ),
        (
            "deepspeech",
            "DeepSpeech: 3 linear 161->512, BiRNN (ReLU) 512, 2 linear -> 29; B=1, T=200",
            lambda: DeepSpeech(161, 512, 29),
            (torch.randn(1, 1, 200, 161, generator=g),),
            1,
        ),
        (
            "conv_gru",
            "conv1d 40->128 -> 2-layer GRU 256 -> linear 3; B=8, T=200",
            lambda: ConvGRU(40, 128, 256),
            (torch.randn(8, 200, 40, generator=g),),
            1,
        ),
        (
            "forecaster",
            "2-layer GRU 64 over 168 steps, then 24 one-step calls; B=32",
            lambda: Forecaster(64, 24),
            (torch.randn(32, 168, 1, generator=g),),
            24,
        ),
        (
            "seq2seq",
            "embedding 5000x128, BiLSTM 256 encoder, LSTMCell 256 attention decoder, "
            "linear 5000; B=1, source 30, target 20",
            lambda: Seq2Seq(5000, 128, 256),
            (
                torch.randint(0, 5000, (1, 30), generator=g),
                torch.randint(0, 5000, (1, 20), generator=g),
            ),
            21,
        ),
        (
            "subclass",
            "LSTM subclass with lengths (pytorch-forecasting), 2 layers 32->128 -> linear 1; "
            "B=16, lengths 12..50",
            lambda: Subclassed(32, 128),
            (torch.randn(16, 50, 32, generator=g), sub_lengths),
            1,
        ),
    ]
