"""The upcall CNN: a small network on the 40x40 spectrogram, in the spirit of Shiu et al.

Takes the package's input layout ``[n, 40 time frames, 40 freq bins, 1]`` (NHWC, what
PAMGuard's right whale model takes) and returns softmax probabilities (noise,
right_whale), so the exported ONNX needs no post-processing (``output_activation``
"none").
"""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class UpcallNet(nn.Module):
    """Log compression, per-frequency background subtraction, three conv blocks,
    global pooling, dropout, linear.

    The log (inside the model, so the frozen feature chain stays PAMGuard's) lets faint
    calls count as much as loud ones in a frame normalised to sum 1. The background
    subtraction takes each frequency bin's mean over the window's frames from the log
    spectrum: tonal noise and the recorder's spectral shape vanish, a 1-s upcall
    sweeping through a bin stays -- what a site changes, the network does not see.

    ``time_pool`` "max": the last feature map is averaged over frequency and its
    maximum taken over time, so a call filling part of the window is not averaged
    with the background around it ("avg": the mean over both)."""

    def __init__(self, widths: tuple[int, int, int] = (16, 32, 64), dropout: float = 0.3,
                 bins: int = 40, time_pool: str = "avg") -> None:
        super().__init__()
        self.bins = bins  # frames are normalised to sum 1; x bins brings the mean to 1
        self.time_pool = time_pool
        w1, w2, w3 = widths
        self.features = nn.Sequential(_block(1, w1), _block(w1, w2), _block(w2, w3))
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(w3, 2)
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (n, 40, bins, 1) NHWC features straight from the transform chain."""
        x = torch.log(x.permute(0, 3, 1, 2) * self.bins + 0.01)
        x = x - x.mean(dim=2, keepdim=True)  # (n, 1, time, freq): mean over time
        x = self.features(x)  # (n, channels, time, freq)
        if self.time_pool == "max":
            return self.head[2:](x.mean(dim=3).amax(dim=2))
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)
