"""ALSNet: the dilated 1-D CNN of Hassan et al. (ICASSP 2022), as a plain ``nn.Module``."""

from __future__ import annotations

import math

import torch
from torch import nn

#: Keras defaults of the reference code (momentum 0.99 in Keras = 0.01 in PyTorch).
BN_MOMENTUM = 0.01
BN_EPS = 1e-3

#: (out_channels, kernel_size, dilation) of the three convolution blocks.
CONV_SPECS: tuple[tuple[int, int, int], ...] = ((32, 11, 1), (64, 9, 2), (128, 7, 3))
HIDDEN = 64


def receptive_field(specs: tuple[tuple[int, int, int], ...] = CONV_SPECS) -> int:
    """Samples seen by one output position of the last convolution (45 for ALSNet)."""
    return 1 + sum((k - 1) * d for _, k, d in specs)


RECEPTIVE_FIELD = receptive_field()


class ALSNet(nn.Module):
    """Dilated 1-D CNN that maps raw EMG to class scores.

    Three blocks of Conv1d (stride 1, 'valid') → ReLU → BatchNorm with dilations 1, 2, 3,
    global max pooling over time, Dense(64) → ReLU → BatchNorm, and an output layer. The
    global max pool makes the network a detector of the most disease-like local waveform
    (45-sample receptive field, about 1.9 ms at 23437.5 Hz) anywhere in the window, so it
    accepts any input length of at least :data:`RECEPTIVE_FIELD` samples.

    Parameters
    ----------
    n_chans : int
        Input channels (1 for single-channel needle EMG).
    n_outputs : int
        1 for a binary task (one logit, P = sigmoid), else the number of classes
        (logits, P = softmax).

    Notes
    -----
    Input ``(batch, n_chans, n_times)`` in microvolts, unfiltered and unnormalised. The
    forward pass returns logits; :meth:`predict_proba` returns probabilities. With
    ``n_outputs=1`` the model has 85,249 trainable parameters and 576 BatchNorm running
    statistics, as the reference Keras summary (85,825 in all).

    References
    ----------
    .. [1] K. M. N. Hassan et al., "ALSNet: A Dilated 1-D CNN for Identifying ALS from Raw
       EMG Signal", ICASSP 2022, pp. 1181-1185, doi:10.1109/ICASSP43922.2022.9747366.
    """

    def __init__(self, n_chans: int = 1, n_outputs: int = 1):
        super().__init__()
        self.n_chans = n_chans
        self.n_outputs = n_outputs
        layers: list[nn.Module] = []
        c_in = n_chans
        for c_out, k, d in CONV_SPECS:
            layers += [
                nn.Conv1d(c_in, c_out, k, dilation=d),
                nn.ReLU(inplace=True),
                nn.BatchNorm1d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM),
            ]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.dense = nn.Sequential(
            nn.Linear(c_in, HIDDEN),
            nn.ReLU(inplace=True),
            nn.BatchNorm1d(HIDDEN, eps=BN_EPS, momentum=BN_MOMENTUM),
        )
        self.out = nn.Linear(HIDDEN, n_outputs)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras defaults: He-normal convolutions, Glorot-uniform dense layers, zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                # Keras he_normal: truncated normal, std sqrt(2 / fan_in), cut at 2 std.
                std = math.sqrt(2.0 / (m.in_channels * m.kernel_size[0]))
                nn.init.trunc_normal_(m.weight, 0.0, std, -2 * std, 2 * std)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm1d):
                m.reset_parameters()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Per-position features of the last block, ``(N, 128, T - 44)``."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)        # (N, 128, T - 44)
        x = x.amax(dim=-1)          # (N, 128)  global max over time
        x = self.dense(x)           # (N, 64)
        x = self.out(x)             # (N, n_outputs) logits
        return x

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(N, n_classes)``; a binary model gives ``[1 - p, p]``."""
        return logits_to_proba(self(x))


def logits_to_proba(logits: torch.Tensor) -> torch.Tensor:
    """Probabilities from logits: sigmoid for one output (as ``[1-p, p]``), else softmax."""
    if logits.shape[-1] == 1:
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], dim=-1)
    return torch.softmax(logits, dim=-1)


def members_of(model: nn.Module | list | tuple) -> list:
    """An ensemble's networks as a list (a list or tuple of them), or ``[model]`` for one network."""
    return list(model) if isinstance(model, (list, tuple)) else [model]


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable parameters, BatchNorm running-statistic values)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buffers = sum(b.numel() for n, b in model.named_buffers() if "running" in n)
    return trainable, buffers
