"""Channel attention variants compared in the ECA-Net ablations.

Wang, Wu, Zhu, Li, Zuo, Hu. "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural
Networks", CVPR 2020, arXiv 1910.03151 (Table 2, Eq. 7, Eq. 9, Eq. 12).

Every module takes the channel count ``C`` as its first argument and maps a feature map
(N, C, H, W) to one of the same shape and memory format: global average pooling to y (N, C),
a gate ``sigmoid(f(y))`` of shape (N, C), then ``x * gate``. The variants differ only in ``f``.

Example:
    >>> import torch
    >>> from ecasweep.models.attention import create_attention
    >>> eca = create_attention("eca", 64, k=3)
    >>> eca(torch.randn(2, 64, 8, 8)).shape
    torch.Size([2, 64, 8, 8])
"""

from __future__ import annotations

import inspect
import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import user
from .timm_attention import TIMM_VARIANTS, TimmAttention

from .catalogue import (  # noqa: F401  (re-exported: the kernel-size rule is part of this API)
    ADAPTIVE, KernelSize, adaptive_kernel_size, check_gamma as _check_gamma,
    check_positive_int as _check_positive_int, odd_k as _odd_k, resolve_kernel_size,
)
from .catalogue import KERNEL_VARIANTS, NATIVE_NAMES, TIMM_NAMES, VARIANTS, accepted_arguments, variant  # noqa: F401


def _check_divides(name: str, value: int, channels: int) -> None:
    _check_positive_int(name, value)
    if channels % value:
        raise ValueError(f"{name}={value} must divide the channel count C={channels}")


class _PooledGateScale(torch.autograd.Function):
    """``x * sigmoid(f(mean_hw(x)))`` with one fused backward over the large tensors.

    Autograd's version of this graph allocates three or four tensors of the size of ``x`` in the
    backward (the product's two gradients, the mean's expanded gradient, their sum). Here one buffer
    first holds ``grad_out * x`` (summed to ``dL/dgate``) and is then overwritten with
    ``grad_x = grad_out * gate + dL/dy / HW``: on CPU a fresh large tensor costs page faults, so
    reusing it saves as much as the passes do. Only the small (N, C) gate function runs through
    autograd; its graph is built in the forward (under the caller's autocast state) and kept.
    """

    @staticmethod
    def forward(ctx, x: Tensor, gate_fn: Callable[[Tensor], Tensor], *params: Tensor) -> Tensor:
        with torch.enable_grad():
            y = x.detach().mean((2, 3), dtype=_accumulator(x.dtype)).requires_grad_()
            gate = gate_fn(y)
        ctx.save_for_backward(x, *params)
        ctx.y, ctx.gate = y, gate
        return x * gate.detach().to(x.dtype)[:, :, None, None]

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, *params = ctx.saved_tensors
        need_x, _, *need_params = ctx.needs_input_grad
        trainable = [p for p, need in zip(params, need_params) if need]
        buffer = torch.mul(grad_out, x)
        grad_gate = buffer.sum((2, 3), dtype=ctx.y.dtype)
        # retain_graph: the outer graph may be backpropagated again (retain_graph=True there).
        grads = torch.autograd.grad(ctx.gate, [ctx.y] * need_x + trainable, grad_gate,
                                    retain_graph=True)
        grad_x = None
        if need_x:
            grad_y, *grads = grads
            grad_x = _input_grad(buffer, grad_out, ctx.gate.detach(), grad_y)
        grads = iter(grads)
        return (grad_x, None, *(next(grads) if need else None for need in need_params))


def _input_grad(buffer: Tensor, grad_out: Tensor, gate: Tensor, grad_y: Tensor) -> Tensor:
    """``grad_out * gate + grad_y / HW`` (the product's and the mean's gradients), written into ``buffer``."""
    dtype = buffer.dtype
    gate = gate.to(dtype)[:, :, None, None]
    grad_pooled = (grad_y / (buffer.shape[2] * buffer.shape[3])).to(dtype)[:, :, None, None]
    if buffer.stride(1) == 1:  # channels innermost (channels_last): one addcmul pass
        return torch.addcmul(grad_pooled, grad_out, gate, out=buffer)
    # H*W innermost: an addcmul with two broadcast operands is not vectorised
    return torch.mul(grad_out, gate, out=buffer).add_(grad_pooled)


class _KernelGateScale(torch.autograd.Function):
    """``x * sigmoid(C1D(mean_hw(x)) + bias)`` for the ECA family, with the whole backward by hand.

    Same arithmetic as ``_PooledGateScale`` with ``_ChannelConv`` as the gate, without what costs
    most at the sizes of a CIFAR ResNet (C = 16-64, batch 32): the re-entrant ``autograd.grad`` of the
    generic gate (about 0.2 ms a call on one core) and the inner autograd.Function.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, circular: bool) -> Tensor:
        padded, gate = _kernel_gate(x, weight, bias, circular)
        ctx.save_for_backward(x, padded, weight, gate)
        ctx.circular, ctx.bias_shape = circular, None if bias is None else bias.shape
        return x * gate.to(x.dtype)[:, :, None, None]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, padded, weight, gate = ctx.saved_tensors
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        buffer = torch.mul(grad_out, x)
        grad_z = torch.ops.aten.sigmoid_backward(buffer.sum((2, 3), dtype=gate.dtype), gate)
        grad_y, grad_w = _conv_taps_backward(grad_z, padded, weight, ctx.circular, need_x, need_w)
        grad_b = None
        if need_b:
            grad_b = grad_z.sum(0) if ctx.bias_shape[0] > 1 else grad_z.sum().reshape(ctx.bias_shape)
        grad_x = _input_grad(buffer, grad_out, gate, grad_y) if need_x else None
        return grad_x, grad_w, grad_b, None


def _kernel_gate(x: Tensor, weight: Tensor, bias: Tensor | None, circular: bool) -> tuple[Tensor, Tensor]:
    """(padded pooled input, gate) of the ECA family: ``sigmoid(C1D(mean_hw(x)) + bias)``, (N, C)."""
    y = x.mean((2, 3), dtype=_accumulator(x.dtype))
    padded = _pad_channels(y, weight.shape[1] // 2, circular)
    z = _conv_taps(padded, weight, y.shape[1])
    return padded, torch.sigmoid(z if bias is None else z + bias)


def _accumulator(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


class ChannelAttention(nn.Module):
    """Base class: squeeze (global average pooling), a gate from ``gate_logits``, excite.

    Subclasses implement ``gate_logits(y) -> (N, C)``. ``attention_params`` counts what
    ``create_attention`` documents for the variant.
    """

    #: user-facing name of the variant (the registry key)
    name: str = ""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = _check_positive_int("channels", channels)

    def gate_logits(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def gate(self, y: Tensor) -> Tensor:
        return torch.sigmoid(self.gate_logits(y))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"{type(self).__name__} expects (N, {self.channels}, H, W), "
                             f"got {tuple(x.shape)}")
        params = tuple(self.parameters())
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
            return _PooledGateScale.apply(x, self.gate, *params)
        y = x.mean((2, 3), dtype=_accumulator(x.dtype))  # as in the grad path: bf16 x, fp32 gate
        return x * self.gate(y).to(x.dtype)[:, :, None, None]

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class Identity(nn.Identity):
    """``none``: the vanilla backbone, no attention."""

    name = "none"

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = _check_positive_int("channels", channels)


class SE(ChannelAttention):
    """``se``: sigmoid(W2 relu(W1 y)), hidden width C / r (Hu et al., Squeeze-and-Excitation).

    ``round_to`` rounds the hidden width up to a multiple (timm uses 8); off by default because it
    changes the paper's parameter count 2 C^2 / r.
    """

    name = "se"

    def __init__(self, channels: int, r: int = 16, bias: bool = False, round_to: int | None = None) -> None:
        super().__init__(channels)
        _check_positive_int("r", r)
        if round_to is None:
            if channels % r:
                raise ValueError(f"r={r} must divide the channel count C={channels} (hidden width C/r)")
            hidden = channels // r
        else:
            _check_positive_int("round_to", round_to)
            hidden = max(round_to, -(-channels // r // round_to) * round_to)
        self.r = r
        self.fc1 = nn.Linear(channels, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, channels, bias=bias)

    def gate_logits(self, y: Tensor) -> Tensor:
        return self.fc2(F.relu(self.fc1(y)))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, r={self.r}"


class SEVar1(ChannelAttention):
    """``se-var1``: sigmoid(y), no parameters."""

    name = "se-var1"

    def gate_logits(self, y: Tensor) -> Tensor:
        return y


class GroupGate(ChannelAttention):
    """sigmoid(W y) with W block-diagonal in ``groups`` blocks: a grouped 1x1 convolution.

    groups = C is SE-Var2 (a diagonal W, C weights), groups = 1 is SE-Var3 (a full C x C matrix),
    anything between is SE-GC (C^2 / G weights).
    """

    def __init__(self, channels: int, groups: int, bias: bool = False) -> None:
        super().__init__(channels)
        _check_divides("groups", groups, channels)
        self.groups = groups
        self.conv = nn.Conv1d(channels, channels, 1, groups=groups, bias=bias)

    def gate_logits(self, y: Tensor) -> Tensor:
        if self.groups == 1:
            return F.linear(y, self.conv.weight[:, :, 0], self.conv.bias)
        return self.conv(y[:, :, None])[:, :, 0]

    def extra_repr(self) -> str:
        return f"channels={self.channels}, groups={self.groups}"


class SEVar2(GroupGate):
    """``se-var2``: sigmoid(w * y), one weight per channel (no cross-channel interaction)."""

    name = "se-var2"

    def __init__(self, channels: int, bias: bool = False) -> None:
        super().__init__(channels, groups=channels, bias=bias)


class SEVar3(GroupGate):
    """``se-var3``: sigmoid(W y), one full C x C matrix (full interaction, no reduction)."""

    name = "se-var3"

    def __init__(self, channels: int, bias: bool = False) -> None:
        super().__init__(channels, groups=1, bias=bias)


class SEGC(GroupGate):
    """``se-gc``: group interaction, either ``groups=G`` (SE-GC1: G = 16) or ``group_size=S``
    channels per group (SE-GC2: S = 16, SE-GC3: S = 8)."""

    name = "se-gc"

    def __init__(self, channels: int, groups: int | None = None, group_size: int | None = None,
                 bias: bool = False) -> None:
        _check_positive_int("channels", channels)
        if (groups is None) == (group_size is None):
            raise ValueError("se-gc takes exactly one of groups=G or group_size=S")
        if group_size is not None:
            _check_divides("group_size", group_size, channels)
            groups = channels // group_size
        self.group_size = group_size
        super().__init__(channels, groups=groups, bias=bias)


class _KernelAttention(ChannelAttention):
    """Shared arguments of the ECA family: ``k`` odd int or "adaptive" with ``gamma``, ``beta``."""

    def __init__(self, channels: int, k: KernelSize = 3, gamma: float = 2.0, beta: float = 1.0,
                 min_k: int = 1) -> None:
        super().__init__(channels)
        _check_gamma(gamma)  # also with an explicit k, where it is unused: an error either way
        self.k = resolve_kernel_size(k, channels, gamma, beta, min_k)
        self.adaptive = k == ADAPTIVE
        self.gamma, self.beta = gamma, beta

    def kernel(self) -> tuple[Tensor, Tensor | None, bool]:
        """(weight (1 or C, k), bias or None, circular padding) of the gate's channel convolution."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"{type(self).__name__} expects (N, {self.channels}, H, W), "
                             f"got {tuple(x.shape)}")
        weight, bias, circular = self.kernel()
        if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                        or (bias is not None and bias.requires_grad)):
            return _KernelGateScale.apply(x, weight, bias, circular)
        # No graph to build (evaluation): the same arithmetic without autograd.Function calls,
        # about 1% of resnet-20's inference time at batch 32 on one core.
        _, gate = _kernel_gate(x, weight, bias, circular)
        return x * gate.to(x.dtype)[:, :, None, None]

    def extra_repr(self) -> str:
        return f"channels={self.channels}, k={self.k}" + (" (adaptive)" if self.adaptive else "")


def _channel_conv(y: Tensor, weight: Tensor, padding_mode: str) -> Tensor:
    """``z[:, c] = sum_j weight[c, j] * y[:, c + j - k // 2]``, a cross-correlation over channels.

    ``weight`` is (1, k) for one kernel shared by all channels (ECA) or (C, k) for one per channel
    (ECA-NS). Outside the channel range ``y`` is zero, or wraps around with ``"circular"``.
    """
    return _ChannelConv.apply(y, weight, padding_mode == "circular")


class _ChannelConv(torch.autograd.Function):
    """One multiply-add per tap, and a hand-written backward of as few operations.

    For an (N, C) input ``F.conv1d`` spends far more in oneDNN's setup and its backward than in the
    arithmetic, and autograd through shifted slices costs a zero-filled tensor per tap; on a
    loaded machine every such small parallel operation costs a thread synchronisation too.
    """

    @staticmethod
    def forward(ctx, y: Tensor, weight: Tensor, circular: bool) -> Tensor:
        padded = _pad_channels(y, weight.shape[1] // 2, circular)
        ctx.save_for_backward(padded, weight)
        ctx.circular = circular
        return _conv_taps(padded, weight, y.shape[1])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_z: Tensor):
        padded, weight = ctx.saved_tensors
        need_y, need_w, _ = ctx.needs_input_grad
        return (*_conv_taps_backward(grad_z, padded, weight, ctx.circular, need_y, need_w), None)


def _conv_taps(padded: Tensor, weight: Tensor, channels: int) -> Tensor:
    taps = weight.unbind(1)
    z = padded[:, :channels] * taps[0]
    for j in range(1, len(taps)):
        z.addcmul_(padded[:, j:j + channels], taps[j])
    return z


def _conv_taps_backward(grad_z: Tensor, padded: Tensor, weight: Tensor, circular: bool, need_y: bool,
                        need_w: bool) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of ``_conv_taps`` w.r.t. the unpadded input and the weight."""
    (n, channels), k = grad_z.shape, weight.shape[1]
    pad = k // 2
    grad_y = grad_w = None
    if need_y:
        grad_padded = grad_z.new_zeros(n, channels + 2 * pad)
        for j, tap in enumerate(weight.unbind(1)):
            grad_padded[:, j:j + channels].addcmul_(grad_z, tap)
        grad_y = grad_padded[:, pad:pad + channels]
        if circular and pad:  # the copies at the two ends belong to the other end
            grad_y = grad_y.clone()
            grad_y[:, :pad] += grad_padded[:, channels + pad:]
            grad_y[:, channels - pad:] += grad_padded[:, :pad]
    if need_w:
        products = padded.unfold(1, k, 1) * grad_z[:, :, None]  # (N, C, k)
        grad_w = products.sum((0, 1))[None] if weight.shape[0] == 1 else products.sum(0)
        grad_w = grad_w.to(weight.dtype)
    return grad_y, grad_w


def _pad_channels(y: Tensor, pad: int, circular: bool) -> Tensor:
    if not pad:
        return y
    if circular:
        if pad > y.shape[1]:
            raise ValueError(f"circular padding of {pad} needs at least {pad} channels, got {y.shape[1]}")
        return torch.cat((y[:, -pad:], y, y[:, :pad]), 1)
    return F.pad(y, (pad, pad))


class ECA(_KernelAttention):
    """``eca``: sigmoid(C1D_k(y)), a 1-D convolution of size k over channels, shared (Eq. 9).

    The weight is ``conv.weight`` of shape (1, 1, k), as in the paper's code.
    """

    name = "eca"
    padding_mode = "zeros"

    def __init__(self, channels: int, k: KernelSize = 3, gamma: float = 2.0, beta: float = 1.0,
                 min_k: int = 1, bias: bool = False) -> None:
        super().__init__(channels, k, gamma, beta, min_k)
        self.conv = nn.Conv1d(1, 1, self.k, padding=self.k // 2, bias=bias,
                              padding_mode=self.padding_mode)

    def gate_logits(self, y: Tensor) -> Tensor:
        # Same result as self.conv(y[:, None, :]), a few times faster on CPU for these tiny inputs.
        z = _channel_conv(y, self.conv.weight.view(1, self.k), self.padding_mode)
        return z if self.conv.bias is None else z + self.conv.bias

    def kernel(self) -> tuple[Tensor, Tensor | None, bool]:
        return self.conv.weight.view(1, self.k), self.conv.bias, self.padding_mode == "circular"


class CECA(ECA):
    """``ceca``: ECA with circular padding, so the first and last channels are neighbours."""

    name = "ceca"
    padding_mode = "circular"


class ECANS(_KernelAttention):
    """``eca-ns``: a band matrix with k weights per channel, not shared (Eq. 7): k C weights.

    ``weight[c, j]`` multiplies ``y[c + j - k // 2]`` (zero outside the channel range).
    """

    name = "eca-ns"

    def __init__(self, channels: int, k: KernelSize = 3, gamma: float = 2.0, beta: float = 1.0,
                 min_k: int = 1, bias: bool = False) -> None:
        super().__init__(channels, k, gamma, beta, min_k)
        self.weight = nn.Parameter(torch.empty(channels, self.k))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None
        # Same fan-in as the shared 1-D convolution of ECA, so the two start alike.
        nn.init.uniform_(self.weight, -1 / math.sqrt(self.k), 1 / math.sqrt(self.k))

    def gate_logits(self, y: Tensor) -> Tensor:
        z = _channel_conv(y, self.weight, "zeros")
        return z if self.bias is None else z + self.bias

    def kernel(self) -> tuple[Tensor, Tensor | None, bool]:
        return self.weight, self.bias, False


REGISTRY: dict[str, type[nn.Module]] = {
    cls.name: cls for cls in (Identity, SE, SEVar1, SEVar2, SEVar3, SEGC, ECANS, ECA, CECA, *TIMM_VARIANTS)
}
assert list(REGISTRY) == list(VARIANTS), "ecasweep.models.catalogue.VARIANTS lists the registry's variants in order"


def attention_names() -> list[str]:
    """The user-facing names: the paper's Table 2 in its order, then timm's modules."""
    return list(REGISTRY)


def _lookup(name: str) -> type[nn.Module]:
    return REGISTRY[variant(name).name]  # variant: a ValueError listing the names


def attention_class(name: str) -> type[nn.Module] | Callable[..., nn.Module]:
    """The class of the variant ``name``, or of a user's module (``models.user``: a reference such as
    ``"/abs/my_attn.py:MyAttention"`` or ``"my_pkg.attn:MyAttention"``, or an entry-point name)."""
    if isinstance(name, str) and name not in VARIANTS and user.is_user(name, VARIANTS):
        return user.load(name)
    return _lookup(name)


def create_attention(name: str, channels: int, **kwargs) -> nn.Module:
    """Build the attention variant ``name`` for ``channels`` channels.

    ``name`` may also name a user's module (``models.user``): ``"path/to/file.py:Class"``,
    ``"package.module:Class"`` or a name registered in the entry-point group ``ecasweep.attention``;
    ``Class(channels, **kwargs)`` must return an ``nn.Module`` that keeps its input's shape.

    Keyword arguments: ``r`` (se), ``groups`` / ``group_size`` (se-gc), ``k``, ``gamma``, ``beta``,
    ``min_k`` (eca, eca-ns, ceca), ``bias`` (all with parameters); for timm's modules ``r``,
    ``spatial_k`` (cbam, lcbam) and ``extent`` (ge-*), see ``ecasweep.attention_timm``. An argument the
    variant does not take is an error rather than silently ignored.

    >>> create_attention("se-gc", 64, groups=16).conv.weight.shape  # 16 blocks of 4 x 4
    torch.Size([64, 4, 1])
    """
    if isinstance(name, str) and name not in VARIANTS and user.is_user(name, VARIANTS):
        return user.create(name, channels, **kwargs)
    cls = _lookup(name)
    allowed = accepted_arguments(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"attention {name!r} does not take {', '.join(unknown)}; "
                         f"it takes: {', '.join(allowed) or 'no arguments'}")
    return cls(channels, **kwargs)


def is_attention(module: nn.Module) -> bool:
    """True for the modules ``create_attention`` builds (including ``none`` and a user's modules)."""
    return isinstance(module, (ChannelAttention, Identity, TimmAttention)) or \
        getattr(module, "_ecasweep_attention", False) is True


def expected_params(name: str, channels: int, **kwargs) -> int:
    """The paper's parameter count of one bias-free module (Table 2), for checks and reports."""
    c = channels
    k = lambda: resolve_kernel_size(kwargs.get("k", 3), c, kwargs.get("gamma", 2.0),  # noqa: E731
                                    kwargs.get("beta", 1.0), kwargs.get("min_k", 1))
    if name == "se":
        return 2 * c * c // kwargs.get("r", 16)
    if name == "se-gc":
        groups = kwargs.get("groups") or c // kwargs["group_size"]
        return c * c // groups
    counts = {"none": lambda: 0, "se-var1": lambda: 0, "se-var2": lambda: c, "se-var3": lambda: c * c,
              "eca-ns": lambda: k() * c, "eca": k, "ceca": k}
    return counts[_lookup(name).name]()


def describe(names: Sequence[str] | None = None) -> dict[str, str]:
    """One-line description of each variant (the first docstring line)."""
    return {n: inspect.getdoc(REGISTRY[n]).splitlines()[0] for n in (names or REGISTRY)}
