"""batdetect2's detection network (``Net2DFast``, batdetect2 1.3.1 ``detector/models.py``),
rebuilt in PyTorch from a checkpoint's ``params`` and ``state_dict`` so that it can be
exported to ONNX without importing batdetect2 itself.

The layer names match batdetect2's, so the checkpoint's ``state_dict`` loads strictly. The
exported graph also does batdetect2's bilinear resize of the spectrogram
(``compute_spectrogram``): it takes the ``(220, W)`` spectrogram the pamlive front end makes
and returns ``detection``, ``size`` and ``classes`` (softmax, last = background).

Torch is imported here only: the monitor never needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED = ("Net2DFast", "Net2DFastNoAttn", "Net2DFastNoCoordConv")


def _coords(height: int) -> nn.Parameter:
    """The frequency-position channel a coord-conv block appends (a checkpoint entry)."""
    return nn.Parameter(torch.linspace(-1, 1, height)[None, None, :, None], requires_grad=False)


class ConvDown(nn.Module):
    """Conv (with the frequency coordinate as an extra channel if ``coord``), max-pool 2,
    batch norm, ReLU: ``ConvBlockDownCoordF`` / ``ConvBlockDownStandard``."""

    def __init__(self, in_chn: int, out_chn: int, height: int, coord: bool) -> None:
        super().__init__()
        if coord:
            self.coords = _coords(height)
        self.coord = coord
        self.conv = nn.Conv2d(in_chn + int(coord), out_chn, kernel_size=3, padding=1)
        self.conv_bn = nn.BatchNorm2d(out_chn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.coord:
            x = torch.cat((x, self.coords.expand(x.shape[0], 1, -1, x.shape[3])), 1)
        return F.relu(self.conv_bn(F.max_pool2d(self.conv(x), 2, 2)))


class ConvUp(nn.Module):
    """Bilinear upsampling ×2, conv (with the frequency coordinate if ``coord``), batch
    norm, ReLU: ``ConvBlockUpF`` / ``ConvBlockUpStandard``."""

    def __init__(self, in_chn: int, out_chn: int, height: int, coord: bool) -> None:
        super().__init__()
        if coord:
            self.coords = _coords(height * 2)
        self.coord = coord
        self.conv = nn.Conv2d(in_chn + int(coord), out_chn, kernel_size=3, padding=1)
        self.conv_bn = nn.BatchNorm2d(out_chn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        if self.coord:
            x = torch.cat((x, self.coords.expand(x.shape[0], 1, -1, x.shape[3])), 1)
        return F.relu(self.conv_bn(self.conv(x)))


class SelfAttention(nn.Module):
    """Attention over time in the bottleneck, as batdetect2's ``SelfAttention`` (softmax
    over the key axis, scaled by 1/att_dim)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.att_dim = dim
        self.key_fun = nn.Linear(dim, dim)
        self.val_fun = nn.Linear(dim, dim)
        self.que_fun = nn.Linear(dim, dim)
        self.pro_fun = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.squeeze(2).permute(0, 2, 1)  # (N, T, C)
        kk, qq, vv = self.key_fun(x), self.que_fun(x), self.val_fun(x)
        weights = torch.softmax(torch.bmm(kk, qq.permute(0, 2, 1)) / self.att_dim, 1)
        att = torch.bmm(vv.permute(0, 2, 1), weights)  # (N, C, T)
        return self.pro_fun(att.permute(0, 2, 1)).permute(0, 2, 1).unsqueeze(2)


class Net2DFast(nn.Module):
    """The encoder–bottleneck–decoder of batdetect2, preceded by its input resize."""

    def __init__(self, num_filts: int, num_classes: int, ip_height: int = 128,
                 resize_factor: float = 0.5, emb_dim: int = 0, attention: bool = True,
                 coord: bool = True) -> None:
        super().__init__()
        f = num_filts
        h = ip_height
        self.ip_height = h
        self.resize_factor = resize_factor
        self.bneck_height = h // 32
        self.conv_dn_0 = ConvDown(1, f // 4, h, coord)
        self.conv_dn_1 = ConvDown(f // 4, f // 2, h // 2, coord)
        self.conv_dn_2 = ConvDown(f // 2, f, h // 4, coord)
        self.conv_dn_3 = nn.Conv2d(f, f * 2, 3, padding=1)
        self.conv_dn_3_bn = nn.BatchNorm2d(f * 2)
        self.conv_1d = nn.Conv2d(f * 2, f * 2, (h // 8, 1), padding=0)
        self.conv_1d_bn = nn.BatchNorm2d(f * 2)
        self.att = SelfAttention(f * 2) if attention else None
        self.conv_up_2 = ConvUp(f * 2, f // 2, h // 8, coord)
        self.conv_up_3 = ConvUp(f // 2, f // 4, h // 4, coord)
        self.conv_up_4 = ConvUp(f // 4, f // 4, h // 2, coord)
        self.conv_op = nn.Conv2d(f // 4, f // 4, kernel_size=3, padding=1)
        self.conv_op_bn = nn.BatchNorm2d(f // 4)
        self.conv_size_op = nn.Conv2d(f // 4, 2, kernel_size=1)
        self.conv_classes_op = nn.Conv2d(f // 4, num_classes + 1, kernel_size=1)
        if emb_dim > 0:  # trained but unused at inference; kept so the checkpoint loads
            self.conv_emb = nn.Conv2d(f, emb_dim, kernel_size=1)

    def resize(self, spec: torch.Tensor) -> torch.Tensor:
        """batdetect2's ``compute_spectrogram`` resize: to ``ip_height`` rows and
        ``floor(W * resize_factor)`` columns, bilinear, align_corners=False."""
        # a tensor, so that the traced ONNX graph keeps the width dynamic
        width = torch.floor(torch.tensor(spec.shape[-1], dtype=torch.float32)
                            * self.resize_factor).to(torch.int64)
        return F.interpolate(spec, size=(self.ip_height, cast(int, width)), mode="bilinear",
                             align_corners=False)

    def network(self, ip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Detection, size and class probabilities of a resized spectrogram."""
        x1 = self.conv_dn_0(ip)
        x2 = self.conv_dn_1(x1)
        x3 = self.conv_dn_2(x2)
        x3 = F.relu(self.conv_dn_3_bn(self.conv_dn_3(x3)))
        x = F.relu(self.conv_1d_bn(self.conv_1d(x3)))
        if self.att is not None:
            x = self.att(x)
        x = x.repeat(1, 1, self.bneck_height * 4, 1)
        x = self.conv_up_2(x + x3)
        x = self.conv_up_3(x + x2)
        x = self.conv_up_4(x + x1)
        x = F.relu(self.conv_op_bn(self.conv_op(x)))
        classes = softmax_channels(self.conv_classes_op(x))
        detection = classes[:, :-1].sum(1, keepdim=True)
        return detection, F.relu(self.conv_size_op(x)), classes

    def forward(self, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.network(self.resize(spec))


def softmax_channels(x: torch.Tensor) -> torch.Tensor:
    """``torch.softmax(x, 1)`` written out (max, exp, sum, divide): exported as such, ONNX
    Runtime runs it in a fraction of the time its Softmax takes on a non-last axis, a
    quarter of the whole network's (benchmarks/bench_bats.py); equal to 1e-7."""
    e = torch.exp(x - x.amax(1, keepdim=True))
    return e / e.sum(1, keepdim=True)


def build(params: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]) -> Net2DFast:
    """The network a checkpoint describes, its weights loaded strictly, in eval mode.

    Raises ``ValueError`` for a model_name batdetect2 1.3.1 does not have and
    ``KeyError``/``RuntimeError`` for params or weights that do not fit (the importer turns
    them into one-line errors).
    """
    name = params["model_name"]
    if name not in SUPPORTED:
        raise ValueError(f"unknown batdetect2 model_name {name!r} (have {', '.join(SUPPORTED)})")
    net = Net2DFast(int(params["num_filters"]), len(params["class_names"]),
                    ip_height=int(params["ip_height"]),
                    resize_factor=float(params["resize_factor"]),
                    emb_dim=int(params.get("emb_dim", 0)),
                    attention=name != "Net2DFastNoAttn",
                    coord=name != "Net2DFastNoCoordConv")
    net.load_state_dict(dict(state_dict), strict=True)
    return net.eval()
