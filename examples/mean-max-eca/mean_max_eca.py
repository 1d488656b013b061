"""MeanMaxECA: ECA's gate fed by both average and max pooling (an example of your own module).

ECA (Wang et al., CVPR 2020) squeezes each channel by global average pooling and mixes neighbouring
channels with a 1-D convolution of size k. CBAM (Woo et al., ECCV 2018) showed that max pooling
carries information average pooling misses. MeanMaxECA gives ECA's convolution both: two input rows
(the average and the max of each channel), one output row, 2k weights per module instead of k.

The contract ecasweep asks of a module (docs/user-modules.md): ``MeanMaxECA(channels, **kwargs)`` is
an ``nn.Module`` that maps a feature map (N, C, H, W) to one of the same shape.
"""

import torch
from torch import nn


class MeanMaxECA(nn.Module):
    def __init__(self, channels: int, k: int = 3) -> None:
        super().__init__()
        if k < 1 or k % 2 == 0:
            raise ValueError(f"k must be an odd integer >= 1, got {k}")
        self.channels = channels
        self.conv = nn.Conv1d(2, 1, k, padding=k // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.stack((x.mean((2, 3)), x.amax((2, 3))), dim=1)  # (N, 2, C)
        gate = torch.sigmoid(self.conv(pooled.float()))                # (N, 1, C)
        return x * gate[:, 0, :, None, None].to(x.dtype)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, k={self.conv.kernel_size[0]}"
