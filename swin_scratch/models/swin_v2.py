"""Swin Transformer V2 (Liu et al., 2022), written top-down like :mod:`swin_scratch.models.swin`:
log-spaced coordinates -> cosine window attention with a continuous position bias -> res-post-norm
block -> patch merging -> stage -> model -> named constructors.

What V2 changes against V1, and nothing else:

* scaled cosine attention: ``cos(q, k) * exp(min(logit_scale, log 100))`` per head replaces
  ``q . k / sqrt(d)``;
* the relative position bias is ``16 * sigmoid(cpb_mlp(log-spaced (dy, dx)))`` (a small MLP over
  the offsets, so a window size other than the pre-training one needs no table interpolation)
  instead of a learned table;
* res-post-norm blocks: ``x + DropPath(LN(attn(x)))``, ``x + DropPath(LN(mlp(x)))``;
* patch merging normalises after the reduction (Linear 4C -> 2C, then LN(2C));
* the qkv projection has a query and a value bias but no key bias (``q_bias``, ``v_bias``).

The learnable parameters carry exactly the state-dict keys of microsoft/Swin-Transformer's
``SwinTransformerV2``. Its checkpoints also store the buffers ``relative_coords_table``,
``relative_position_index`` and ``attn_mask``; here the first two are non-persistent (recomputed from
the window sizes) and the mask comes from the stage's window plan, so a checkpoint's copies are
simply not loaded. Detection mode (``num_classes=0``, ``out_indices=(0, 1, 2, 3)``) works at any
H x W with exactly V1's padding and shift rules: the window plan, partitioning, mask and the one
attention kernel are the ones V1 calls.

One deliberate difference from the official code and torchvision: the shifted-window mask adds
``-inf`` (the project's ``MASKED_LOGIT``), theirs ``-100``. With V2's temperatures of up to 100 a
cosine logit spans [-100, 100], so ``-100`` only mostly masks; ``-inf`` masks exactly. (With random
weights the stage outputs agree with torchvision's to ~1e-13 in float64 either way.)
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from swin_scratch.layers import fused
from swin_scratch.layers.mlp import DropPath, Mlp
from swin_scratch.layers.window import (
    WindowLayout,
    merge_windows,
    partition_windows,
    relative_position_index,
)
from swin_scratch.models.swin import (
    SwinTransformer,
    WindowBlock,
    WindowStage,
    attend_within_windows,
    cached_in_eager_inference,
    concat_2x2_neighbours,
    project,
    qkv_in_head_order,
    split_qkv,
)

__all__ = ["SwinTransformerV2", "swin_v2_tiny", "swin_v2_small", "swin_v2_base", "swin_v2_large"]

# The learned temperature of cosine attention is capped at 100 (official ``max=log(1 / 0.01)``).
MAX_LOGIT_SCALE = math.log(100.0)
# The continuous position bias lies in (0, 16): ``16 * sigmoid(.)``.
POSITION_BIAS_RANGE = 16.0
# Hidden width of the continuous-position-bias MLP (official value).
CPB_HIDDEN = 512


def log_spaced_relative_coords(window_size: int, pretrained_window_size: int = 0) -> Tensor:
    """(1, 2M-1, 2M-1, 2) offsets (dy, dx) of a window, as the continuous position bias MLP sees them.

    Each offset in [-(M-1), M-1] is divided by ``pretrained_window_size - 1`` (or ``M - 1`` when no
    pre-training size is given: 0), so the offsets seen in pre-training span [-8, 8] after the
    ``* 8``; a larger fine-tuning window then reaches beyond 8 rather than squeezing the old range.
    Then ``sign(x) * log2(|x| + 1) / log2(8)``: log spacing, so extrapolating to far offsets asks the
    MLP for little.
    """
    span = pretrained_window_size if pretrained_window_size > 0 else window_size
    offsets = torch.arange(-(window_size - 1), window_size, dtype=torch.float32)  # (2M-1,)
    grid = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), dim=-1)  # (2M-1, 2M-1, 2): (dy, dx)
    grid = grid / max(span - 1, 1) * 8  # a 1 x 1 window has the one offset 0: avoid 0 / 0
    return (torch.sign(grid) * torch.log2(grid.abs() + 1.0) / math.log2(8))[None]


class WindowAttentionV2(nn.Module):
    """Scaled cosine attention inside each M x M window, with a continuous relative position bias.

    Args:
        dim: channels C of the tokens.
        window_size: M, tokens per window side.
        num_heads: attention heads (``dim`` must divide evenly).
        qkv_bias: learned query and value biases. The key has none (the official layout, from
            dot-product attention, where a key bias adds the same q . b to a whole row of logits,
            which the softmax ignores).
        attn_drop: dropout on the attention weights.
        proj_drop: dropout after the output projection.
        pretrained_window_size: window size of pre-training (0: none); it scales the bias MLP's inputs.
    """

    def __init__(
        self,
        dim: int,
        window_size: int,
        num_heads: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        pretrained_window_size: int = 0,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.pretrained_window_size = pretrained_window_size
        self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10.0)))
        self.cpb_mlp = nn.Sequential(
            nn.Linear(2, CPB_HIDDEN), nn.ReLU(inplace=True), nn.Linear(CPB_HIDDEN, num_heads, bias=False)
        )
        self.register_buffer(
            "relative_coords_table", log_spaced_relative_coords(window_size, pretrained_window_size), persistent=False
        )
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self._head_order_cache: dict[tuple, tuple] = {}

    def relative_position_bias(self) -> Tensor:
        """(heads, N, N): ``16 * sigmoid(cpb_mlp(coords))`` gathered for every (query, key) pair.

        Computed in the weights' dtype (float32 unless the model was cast) even under autocast: it is a
        (2M-1)² x 512 MLP, negligible next to the attention, and the eager bias cache
        (:meth:`SwinTransformerBlockV2.attention_bias`) must hold the same values whichever precision
        the forward that filled it ran in.
        """
        tokens = self.window_size * self.window_size
        coords = self.relative_coords_table.to(self.cpb_mlp[0].weight.dtype)  # (1, 2M-1, 2M-1, 2)
        with torch.autocast(coords.device.type, enabled=False):
            table = self.cpb_mlp(coords).view(-1, self.num_heads)  # ((2M-1)², heads)
            # the sigmoid is elementwise: applied to the (2M-1)² table rather than the N² gathered pairs
            table = POSITION_BIAS_RANGE * torch.sigmoid(table)
        bias = table[self.relative_position_index.view(-1)]  # (N*N, heads)
        # contiguous: the fused attention kernel copies a strided mask at every call
        return bias.view(tokens, tokens, self.num_heads).permute(2, 0, 1).contiguous()

    def bias_parameters(self) -> tuple[Tensor, ...]:
        """What the position bias is computed from (the eager bias cache keys on their versions)."""
        return tuple(self.cpb_mlp.parameters())

    def qkv_bias(self) -> Optional[Tensor]:
        """(3C,) the projection's bias: the query bias, zeros for the key, the value bias."""
        if self.q_bias is None:
            return None
        return torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])

    def qkv_parameters(self, token_major: bool) -> tuple[Tensor, Optional[Tensor]]:
        """The qkv projection's weight and bias (:meth:`qkv_bias`); for token-major windows in
        ``qkv_in_head_order`` (reordered once per weight version in eager inference)."""
        if not token_major:
            return self.qkv.weight, self.qkv_bias()
        sources = [self.qkv.weight] + ([] if self.q_bias is None else [self.q_bias, self.v_bias])
        return cached_in_eager_inference(self._head_order_cache, (), sources, lambda: tuple(
            None if param is None else qkv_in_head_order(param, self.num_heads)
            for param in (self.qkv.weight, self.qkv_bias())))

    def attend(self, windows: Tensor, attn_bias: Tensor, token_major: bool = False) -> Tensor:
        """The attention before its output projection: windows (B, nW, N, C), or token-major (B, N, nW, C);
        attn_bias (nW or 1, heads, N, N) -> windows' shape."""
        qkv = fused.linear(windows, *self.qkv_parameters(token_major))  # (B, nW, N, 3C) or (B, N, nW, 3C)
        q, k, v = split_qkv(qkv, self.num_heads, token_major)  # (B * nW, heads, N, hd) or (B, nW * heads, N, hd)
        # Cosine attention through the project's one kernel, which computes softmax(q kᵀ / √d + bias) v:
        # with unit-length q̂, k̂ and the per-head temperature s = exp(min(logit_scale, log 100)),
        # feeding it q = q̂ · s · √d and k = k̂ gives q kᵀ / √d = s · cos(q, k), the V2 logits.
        temperature = self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()  # (heads, 1, 1)
        temperature = temperature.repeat(q.shape[1] // self.num_heads, 1, 1)  # one per q.shape[1]: head or (w, h)
        q = (F.normalize(q, dim=-1) * (temperature * self.head_dim**0.5)).to(v.dtype)
        k = F.normalize(k, dim=-1).to(v.dtype)
        dropout_p = self.attn_drop if self.training else 0.0
        return attend_within_windows(q, k, v, attn_bias, token_major, windows.shape, dropout_p)

    def project(self, attended: Tensor) -> Tensor:
        """The output projection (per token, so it may run on windows or on merged maps)."""
        return project(self.proj, self.proj_drop, attended)

    def forward(self, windows: Tensor, attn_bias: Tensor, token_major: bool = False) -> Tensor:
        """windows (B, nW, N, C), or token-major (B, N, nW, C); attn_bias (nW or 1, heads, N, N) -> windows' shape."""
        return self.project(self.attend(windows, attn_bias, token_major))


class SwinTransformerBlockV2(WindowBlock):
    """Res-post-norm block: x + DropPath(LN(W-MSA or SW-MSA(x))), then x + DropPath(LN(MLP(x))).

    ``shift_size = 0`` gives regular windows (W-MSA), ``window_size // 2`` shifted ones (SW-MSA).

    Args:
        dim, num_heads, window_size, shift_size: as in V1's block.
        mlp_ratio: hidden width of the MLP over ``dim``.
        qkv_bias: the attention's query and value biases.
        drop, attn_drop, drop_path: dropout after projections, on attention weights; stochastic depth.
        pretrained_window_size: window size of pre-training (0: none), for the position bias MLP.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int = 8,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        pretrained_window_size: int = 0,
    ):
        super().__init__(window_size, shift_size)
        self.attn = WindowAttentionV2(dim, window_size, num_heads, qkv_bias, attn_drop, drop, pretrained_window_size)
        self.norm1 = nn.LayerNorm(dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: Tensor, layout: WindowLayout, mask: Optional[Tensor]) -> Tensor:
        """x (B, H, W, C); layout: this block's token routes (regular or shifted windows), from the stage;
        mask (nW, N, N) from the stage, or None when nothing is shifted."""
        height, width = x.shape[1], x.shape[2]
        windows = partition_windows(x, layout)  # (B, nW, N, C) or (B, N, nW, C), padded and shifted; no norm first
        bias = self.attention_bias(mask if layout.geometry.is_shifted else None)
        # merged before the output projection, which is per token: the product skips the padding's rows
        attended = merge_windows(self.attn.attend(windows, bias, layout.token_major), layout, height, width)
        x = x + self.drop_path(self.norm1(self.attn.project(attended)))  # (B, H, W, C)
        return x + self.drop_path(self.norm2(self.mlp(x)))


class PatchMergingV2(nn.Module):
    """Halve the resolution, double the channels: 2x2 neighbours concatenated (4C) -> Linear 4C -> 2C -> LN.

    V1 normalises the 4C concatenation before the reduction; V2 normalises its 2C output.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(2 * dim)

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, ceil(H/2), ceil(W/2), 2C)."""
        return self.norm(fused.linear_module(self.reduction, concat_2x2_neighbours(x)))


class BasicLayerV2(WindowStage):
    """One V2 stage: ``depth`` res-post-norm blocks alternating regular / shifted windows, then optional
    V2 patch merging; the window plan and the block loop (with activation checkpointing) are V1's.

    Args:
        dim, depth, num_heads, window_size, mlp_ratio, qkv_bias, drop, attn_drop: as in V1's stage.
        drop_path: stochastic depth rate of each block (empty: none).
        downsample: patch merging at the end of the stage.
        use_checkpoint: activation checkpointing of every block.
        pretrained_window_size: window size of pre-training (0: none), for the position bias MLP.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: Sequence[float] = (),
        downsample: bool = False,
        use_checkpoint: bool = False,
        pretrained_window_size: int = 0,
    ):
        def make_block(shift_size: int, rate: float) -> SwinTransformerBlockV2:
            return SwinTransformerBlockV2(
                dim, num_heads, window_size, shift_size, mlp_ratio, qkv_bias, drop, attn_drop, rate,
                pretrained_window_size,
            )

        super().__init__(depth, window_size, drop_path, use_checkpoint, make_block,
                         (lambda: PatchMergingV2(dim)) if downsample else None)

    def zero_init_post_norms(self) -> None:
        """Official V2 init: every block's norm1 / norm2 start at weight 0, bias 0, so each residual
        branch starts as zero and the network as the identity through its blocks."""
        for block in self.blocks:
            for norm in (block.norm1, block.norm2):
                nn.init.zeros_(norm.weight)
                nn.init.zeros_(norm.bias)


class SwinTransformerV2(SwinTransformer):
    """Swin Transformer V2: V1's model (patch embedding, stages, detection outputs, freezing, the same
    constructor) with V2 stages; the defaults are torchvision's swin_v2 recipe (256², window 8).

    Args:
        All of :class:`SwinTransformer`'s, and
        pretrained_window_sizes: per stage, the window size the weights were pre-trained with (0: none);
            it normalises the position bias MLP's inputs, so fine-tuning at another ``window_size`` keeps
            the learned bias function.
    """

    def __init__(
        self,
        img_size: int = 256,
        patch_size: int = 4,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 8,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        ape: bool = False,
        patch_norm: bool = True,
        out_indices: Optional[Sequence[int]] = None,
        frozen_stages: int = -1,
        use_checkpoint: bool = False,
        pretrained_window_sizes: Optional[Sequence[int]] = None,
    ):
        pretrained_window_sizes = tuple(pretrained_window_sizes or (0,) * len(depths))
        if len(pretrained_window_sizes) != len(depths):
            raise ValueError(
                f"pretrained_window_sizes {pretrained_window_sizes} needs one entry per stage ({len(depths)} stages)"
            )
        # a plain attribute, set before nn.Module's __init__ on purpose: _build_stage reads it
        self.pretrained_window_sizes = pretrained_window_sizes
        super().__init__(
            img_size, patch_size, in_chans, num_classes, embed_dim, depths, num_heads, window_size, mlp_ratio,
            qkv_bias, drop_rate, attn_drop_rate, drop_path_rate, ape, patch_norm, out_indices, frozen_stages,
            use_checkpoint,
        )
        for layer in self.layers:
            layer.zero_init_post_norms()

    def _build_stage(self, index: int, *args, **kwargs) -> BasicLayerV2:
        return BasicLayerV2(*args, **kwargs, pretrained_window_size=self.pretrained_window_sizes[index])

    def no_weight_decay_keywords(self) -> set[str]:
        """Name fragments whose parameters take no weight decay, the official V2 recipe's: the attention
        temperature and the position bias MLP. The official optimizer also skips every 1-D parameter, which
        covers ``q_bias`` / ``v_bias``; they are named here so that an optimizer that matches names
        (``swin_param_groups``) skips them too."""
        return {"logit_scale", "cpb_mlp", "q_bias", "v_bias"}


def _swin_v2(
    embed_dim: int, depths: tuple[int, ...], num_heads: tuple[int, ...], drop_path_rate: float, **overrides
) -> SwinTransformerV2:
    overrides.setdefault("drop_path_rate", drop_path_rate)
    return SwinTransformerV2(embed_dim=embed_dim, depths=depths, num_heads=num_heads, **overrides)


def swin_v2_tiny(**overrides) -> SwinTransformerV2:
    """SwinV2-T: C = 96, depths (2, 2, 6, 2), heads (3, 6, 12, 24); window 8 at 256², drop path 0.2
    (torchvision's swin_v2_t recipe)."""
    return _swin_v2(96, (2, 2, 6, 2), (3, 6, 12, 24), 0.2, **overrides)


def swin_v2_small(**overrides) -> SwinTransformerV2:
    """SwinV2-S: C = 96, depths (2, 2, 18, 2), heads (3, 6, 12, 24); window 8 at 256², drop path 0.3
    (torchvision's swin_v2_s)."""
    return _swin_v2(96, (2, 2, 18, 2), (3, 6, 12, 24), 0.3, **overrides)


def swin_v2_base(**overrides) -> SwinTransformerV2:
    """SwinV2-B: C = 128, depths (2, 2, 18, 2), heads (4, 8, 16, 32); window 8 at 256², drop path 0.5
    (torchvision's swin_v2_b)."""
    return _swin_v2(128, (2, 2, 18, 2), (4, 8, 16, 32), 0.5, **overrides)


def swin_v2_large(**overrides) -> SwinTransformerV2:
    """SwinV2-L: C = 192, depths (2, 2, 18, 2), heads (6, 12, 24, 48); window 8 at 256², drop path 0.2
    (official swinv2_large_patch4_window12_192_22k; torchvision has no V2-L)."""
    return _swin_v2(192, (2, 2, 18, 2), (6, 12, 24, 48), 0.2, **overrides)
