"""Swin Transformer (Liu et al., 2021), written top-down: patch embedding -> window attention ->
block -> stage -> patch merging -> model -> named constructors.

One module serves both uses:

* classification (``num_classes > 0``, ``out_indices=None``): returns logits; the learnable
  parameters carry exactly the state-dict keys of microsoft/Swin-Transformer;
* detection (``num_classes=0``, ``out_indices=(0, 1, 2, 3)``): returns the requested stages as
  NCHW maps (strides 4, 8, 16, 32), each through its own ``norm{i}``, the layout of
  Swin-Transformer-Object-Detection's backbone; any input H x W works.

Feature maps are channels-last, (B, H, W, C), from the patch embedding to the outputs: LayerNorm,
Linear and window partitioning all act on the last dimension, and no NCHW <-> NHWC copies are
made inside the network. Window attention calls the project's one attention kernel.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as activation_checkpoint
from torch import Tensor, nn

from swin_scratch.layers import fused
from swin_scratch.layers.attention import scaled_dot_product_attention
from swin_scratch.layers.mlp import DropPath, Mlp
from swin_scratch.layers.window import (
    WindowLayout,
    batched_layout,
    merge_windows,
    partition_windows,
    relative_position_index,
    shifted_window_mask,
    window_geometry,
    window_layout,
)

__all__ = ["SwinTransformer", "stage_name", "swin_tiny", "swin_small", "swin_base", "swin_large"]


def stage_name(index: int) -> str:
    """The one public name of stage ``index`` (``layers.{index}`` in the state dict): ``stage{index + 2}``.

    detectron2 names feature maps by log2 of their stride (ResNet's res2..res5, FPN's p2..p6); Swin's
    first stage has stride 4 = 2², hence stage2..stage5 in detectron2 outputs, ONNX outputs and docs.
    """
    return f"stage{index + 2}"


class WindowPlan(NamedTuple):
    """What a stage's blocks share at one map size: the routes of the regular and the shifted windows,
    and the shifted-window mask (nW, N, N), or None when nothing is shifted."""

    regular: WindowLayout
    shifted: WindowLayout
    mask: Optional[Tensor]


def _is_tracing() -> bool:
    """Tracing, ONNX export and torch.compile must not read Python-side caches: a trace would freeze
    the trace-time size's tensors in, and dynamo would break the graph on ``data_ptr()``."""
    return (
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.onnx.is_in_onnx_export()
        or torch.compiler.is_compiling()
    )


def cached_in_eager_inference(cache: dict, key: tuple, sources: Sequence[Tensor], build: Callable[[], Any]) -> Any:
    """``build()``; in eager inference (no autograd, not tracing or compiling) kept in ``cache`` under ``key``
    and the versions of the ``sources`` it is computed from, so that an in-place change of a weight (a
    loaded checkpoint, an optimizer step) builds it again. At most 9 entries are kept."""
    if torch.is_grad_enabled() or _is_tracing():
        return build()
    key = key + tuple((source._version, source.data_ptr()) for source in sources)
    if key not in cache:
        if len(cache) > 8:
            cache.clear()
        cache[key] = build()
    return cache[key]


class PatchEmbed(nn.Module):
    """Non-overlapping patch_size x patch_size patches -> embed_dim channels (a strided conv).

    Inputs whose H or W is not a multiple of patch_size are zero-padded at the bottom/right, so
    no pixel is dropped (as in the official detection backbone).
    """

    def __init__(self, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 96, patch_norm: bool = True):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim) if patch_norm else None

    def forward(self, images: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, ceil(H/p), ceil(W/p), embed_dim)."""
        height, width = images.shape[-2:]
        pad_h = (self.patch_size - height % self.patch_size) % self.patch_size
        pad_w = (self.patch_size - width % self.patch_size) % self.patch_size
        images = F.pad(images, (0, pad_w, 0, pad_h))
        x = self.proj(images).permute(0, 2, 3, 1)  # (B, Hp, Wp, C)
        return self.norm(x) if self.norm is not None else x


def qkv_in_head_order(param: Tensor, num_heads: int) -> Tensor:
    """A qkv projection's weight (3C, C) or bias (3C,) with its rows reordered from (q|k|v, head, d), the
    official layout, to (head, q|k|v, d): what :func:`split_qkv` needs for token-major windows."""
    return param.view(3, num_heads, -1, *param.shape[1:]).transpose(0, 1).reshape(param.shape)


def split_qkv(qkv: Tensor, num_heads: int, token_major: bool) -> tuple[Tensor, Tensor, Tensor]:
    """q, k, v as 4-D views (no copy) of the windows' qkv projection; the fused CPU kernel is ~4x faster
    on 4-D inputs than on 5-D ones.

    * window-major windows: qkv (B, nW, N, 3C), rows of the weight in the official order -> each
      (B * nW, heads, N, d), the windows folded into the batch;
    * token-major windows: qkv (B, N, nW, 3C) from a weight in :func:`qkv_in_head_order` -> each
      (B, nW * heads, N, d), the windows folded into the heads: a bias per window and head, (nW * heads,
      N, N), then broadcasts over the batch (window-major, it would be copied for every image).
    """
    if token_major:
        batch, tokens, num_windows, _ = qkv.shape
        # (B, N, nW, heads, 3, d): window w and head h sit 3C and 3d apart, so (w, h) is one dim of stride 3d
        return qkv.view(batch, tokens, num_windows * num_heads, 3, -1).permute(3, 0, 2, 1, 4).unbind(0)
    batch, num_windows, tokens, _ = qkv.shape
    return qkv.view(batch * num_windows, tokens, 3, num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)


def attend_within_windows(
    q: Tensor, k: Tensor, v: Tensor, attn_bias: Tensor, token_major: bool, windows_shape: torch.Size, dropout_p: float
) -> Tensor:
    """The attention of V1's and V2's windows, through the one kernel: q, k, v from :func:`split_qkv`,
    attn_bias (nW or 1, heads, N, N) -> windows_shape, (B, nW, N, C) or token-major (B, N, nW, C)."""
    if attn_bias.shape[0] != 1:  # a bias per window: the same for every image of the batch
        if token_major:
            attn_bias = attn_bias.flatten(0, 1)[None]  # (1, nW * heads, N, N): a view, broadcast over the batch
        else:
            batch = q.shape[0] // attn_bias.shape[0]
            attn_bias = attn_bias.expand(batch, -1, -1, -1, -1).flatten(0, 1)  # (B * nW, heads, N, N): a copy if B > 1
    out = scaled_dot_product_attention(q, k, v, attn_bias=attn_bias, dropout_p=dropout_p)  # q's shape
    return out.transpose(1, 2).reshape(windows_shape)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each M x M window, with a learned relative position bias.

    The bias table holds one value per head for each of the (2M-1)² relative offsets; the fixed
    ``relative_position_index`` gathers it into an (N, N) matrix per head.
    """

    def __init__(
        self,
        dim: int,
        window_size: int,
        num_heads: int,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self._head_order_cache: dict[tuple, tuple] = {}

    def relative_position_bias(self) -> Tensor:
        """(heads, N, N) gathered from the table."""
        tokens = self.window_size * self.window_size
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]  # (N*N, heads)
        # contiguous: the fused attention kernel copies a strided mask at every call
        return bias.view(tokens, tokens, self.num_heads).permute(2, 0, 1).contiguous()

    def bias_parameters(self) -> tuple[Tensor, ...]:
        """What the position bias is computed from (the eager bias cache keys on their versions)."""
        return (self.relative_position_bias_table,)

    def qkv_parameters(self, token_major: bool) -> tuple[Tensor, Optional[Tensor]]:
        """The qkv projection's weight and bias; for token-major windows in :func:`qkv_in_head_order`
        (reordered once per weight version in eager inference)."""
        weight, bias = self.qkv.weight, self.qkv.bias
        if not token_major:
            return weight, bias
        sources = (weight,) if bias is None else (weight, bias)
        return cached_in_eager_inference(self._head_order_cache, (), sources, lambda: tuple(
            None if param is None else qkv_in_head_order(param, self.num_heads) for param in (weight, bias)))

    def attend(self, windows: Tensor, attn_bias: Tensor, token_major: bool = False) -> Tensor:
        """The attention before its output projection: windows (B, nW, N, C), or token-major (B, N, nW, C);
        attn_bias (nW or 1, heads, N, N) -> windows' shape."""
        qkv = fused.linear(windows, *self.qkv_parameters(token_major))
        q, k, v = split_qkv(qkv, self.num_heads, token_major)
        dropout_p = self.attn_drop if self.training else 0.0
        return attend_within_windows(q, k, v, attn_bias, token_major, windows.shape, dropout_p)

    def project(self, attended: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        """The output projection (per token, so it may run on windows or on merged maps), plus ``residual``."""
        return project(self.proj, self.proj_drop, attended, residual)

    def forward(self, windows: Tensor, attn_bias: Tensor, token_major: bool = False) -> Tensor:
        """windows (B, nW, N, C), or token-major (B, N, nW, C); attn_bias (nW or 1, heads, N, N) -> windows' shape."""
        return self.project(self.attend(windows, attn_bias, token_major))


def project(linear: nn.Linear, dropout: nn.Dropout, x: Tensor, residual: Optional[Tensor] = None) -> Tensor:
    """``residual + dropout(linear(x))``; without an active dropout the add runs inside the product
    (:func:`swin_scratch.layers.fused.linear_module`)."""
    if dropout.p == 0.0 or not dropout.training:
        return fused.linear_module(linear, x, residual=residual)
    out = dropout(linear(x))
    return out if residual is None else residual + out


class WindowBlock(nn.Module):
    """What V1's and V2's blocks share: their window and shift sizes, and the attention bias (position
    bias + shifted-window mask) of their ``self.attn``, cached in eager inference."""

    attn: nn.Module  # with relative_position_bias() and bias_parameters()

    def __init__(self, window_size: int, shift_size: int):
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError(f"shift_size must be in [0, window_size), got {shift_size} for window {window_size}")
        self.window_size = window_size
        self.shift_size = shift_size
        self._bias_cache: dict[tuple, Tensor] = {}

    def drops_paths(self) -> bool:
        """Whether stochastic depth is active (training with a drop-path rate): the residual adds then
        stay outside the branches' last Linear."""
        return self.training and not isinstance(self.drop_path, nn.Identity)

    def attention_bias(self, mask: Optional[Tensor]) -> Tensor:
        """Position bias (+ shifted-window mask): (nW or 1, heads, N, N).

        In eager inference (no autograd, not tracing or compiling) the sum is cached per mask and version
        of the parameters the bias comes from, so it is built once per padded input size, not per forward.
        """
        if _is_tracing():
            return self._sum_bias(mask)
        key = (None if mask is None else (mask.shape, mask.data_ptr()),)
        return cached_in_eager_inference(self._bias_cache, key, self.attn.bias_parameters(),
                                         lambda: self._sum_bias(mask))

    def _sum_bias(self, mask: Optional[Tensor]) -> Tensor:
        bias = self.attn.relative_position_bias()[None]  # (1, heads, N, N)
        return bias if mask is None else bias + mask[:, None]  # (nW, heads, N, N)


class SwinTransformerBlock(WindowBlock):
    """x + DropPath(W-MSA or SW-MSA(LN(x))), then x + DropPath(MLP(LN(x))).

    ``shift_size = 0`` gives regular windows (W-MSA), ``window_size // 2`` shifted ones (SW-MSA).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int = 7,
        shift_size: int = 0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__(window_size, shift_size)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: Tensor, layout: WindowLayout, mask: Optional[Tensor]) -> Tensor:
        """x (B, H, W, C); layout: this block's token routes (regular or shifted windows), from the stage;
        mask (nW, N, N) from the stage, or None when nothing is shifted."""
        height, width = x.shape[1], x.shape[2]
        windows = partition_windows(self.norm1(x), layout)  # (B, nW, N, C) or (B, N, nW, C), padded and shifted
        bias = self.attention_bias(mask if layout.geometry.is_shifted else None)
        # merged before the output projection, which is per token: the product skips the padding's rows
        attended = merge_windows(self.attn.attend(windows, bias, layout.token_major), layout, height, width)
        if self.drops_paths():
            x = x + self.drop_path(self.attn.project(attended))
            return x + self.drop_path(self.mlp(self.norm2(x)))
        x = self.attn.project(attended, residual=x)  # (B, H, W, C); the adds run inside proj and fc2
        return self.mlp(self.norm2(x), residual=x)


class PatchMerging(nn.Module):
    """Halve the resolution, double the channels: 2x2 neighbours concatenated (4C) -> LN -> Linear 4C -> 2C.

    Odd H or W is zero-padded first (as in the official detection backbone).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, ceil(H/2), ceil(W/2), 2C)."""
        return fused.linear_module(self.reduction, self.norm(concat_2x2_neighbours(x)))


def concat_2x2_neighbours(x: Tensor) -> Tensor:
    """(B, H, W, C) -> (B, ceil(H/2), ceil(W/2), 4C): each 2x2 neighbourhood's tokens side by side.

    Odd H or W is zero-padded first. Shared by V1's and V2's patch merging (they differ only in
    where the LayerNorm sits).
    """
    height, width = x.shape[1], x.shape[2]
    x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
    # official concat order: (even row, even col), (odd, even), (even, odd), (odd, odd)
    return torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)


class WindowStage(nn.Module):
    """What every Swin stage shares: the window plan of each map size, and the loop over its blocks.

    The token routes and the shifted-window mask depend only on the map size; they are built once
    per size and shared by the stage's blocks.

    Args:
        depth: blocks, alternating regular (shift 0) and shifted (shift ``window_size // 2``) windows.
        window_size: M, tokens per window side.
        drop_path: stochastic depth rate of each block (empty: none).
        use_checkpoint: activation checkpointing of every block.
        make_block: ``make_block(shift_size, drop_path)`` -> a block called as ``block(x, layout, mask)``.
        make_downsample: builds the patch merging at the end of the stage; None for the last stage.
    """

    def __init__(
        self,
        depth: int,
        window_size: int,
        drop_path: Sequence[float],
        use_checkpoint: bool,
        make_block: Callable[[int, float], nn.Module],
        make_downsample: Optional[Callable[[], nn.Module]],
    ):
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.use_checkpoint = use_checkpoint
        rates = list(drop_path) or [0.0] * depth
        self.blocks = nn.ModuleList(make_block(0 if j % 2 == 0 else self.shift_size, rates[j]) for j in range(depth))
        self.downsample = make_downsample() if make_downsample is not None else None
        self._plan_cache: dict[tuple, WindowPlan] = {}
        self._batched_plan_cache: dict[tuple, WindowPlan] = {}

    def window_plan(self, height: int, width: int, device: torch.device, batch: int = 1) -> WindowPlan:
        """Token routes of the regular and the shifted blocks, and the shifted-window mask (nW, N, N) or
        None when neither dimension is shifted: built once per map size and shared by the stage's blocks;
        the routes of a batch of ``batch`` images once per map size and batch size.

        The cached tensors are built outside inference mode even when the first call is inside it: an
        inference tensor cannot be saved for backward, and a model that ran under ``torch.inference_mode``
        may be trained next (the routes are ``index_select`` indices, which backward keeps)."""
        if _is_tracing():
            return self._build_window_plan(height, width, device)  # one image's routes: partition extends them
        with torch.inference_mode(False):
            return self._cached_window_plan(height, width, device, batch)

    def _cached_window_plan(self, height: int, width: int, device: torch.device, batch: int) -> WindowPlan:
        key = (height, width, str(device))
        if key not in self._plan_cache:
            if len(self._plan_cache) > 16:
                self._plan_cache.clear()
            self._plan_cache[key] = self._build_window_plan(height, width, device)
        plan = self._plan_cache[key]
        if batch == 1:
            return plan
        if key + (batch,) not in self._batched_plan_cache:
            if len(self._batched_plan_cache) > 16:
                self._batched_plan_cache.clear()
            self._batched_plan_cache[key + (batch,)] = WindowPlan(
                batched_layout(plan.regular, batch), batched_layout(plan.shifted, batch), plan.mask
            )
        return self._batched_plan_cache[key + (batch,)]

    def _build_window_plan(self, height: int, width: int, device: torch.device):
        routes = not torch.compiler.is_compiling()  # inductor fuses the textbook steps itself
        regular = window_layout(height, width, self.window_size, 0, device, routes)
        # the shifted blocks' bias differs per window (the mask): token-major windows let it broadcast
        is_shifted = window_geometry(height, width, self.window_size, self.shift_size).is_shifted
        shifted = window_layout(height, width, self.window_size, self.shift_size, device, routes, is_shifted)
        needs_mask = len(self.blocks) > 1 and shifted.geometry.is_shifted
        return WindowPlan(regular, shifted, shifted_window_mask(shifted.geometry, device) if needs_mask else None)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, H, W, C) -> (stage output (B, H, W, C), input of the next stage)."""
        regular, shifted, mask = self.window_plan(x.shape[1], x.shape[2], x.device, x.shape[0])
        for block in self.blocks:
            layout = shifted if block.shift_size else regular
            if self.use_checkpoint and self.training and torch.is_grad_enabled():
                x = activation_checkpoint.checkpoint(block, x, layout, mask, use_reentrant=False)
            else:
                x = block(x, layout, mask)
        return x, (self.downsample(x) if self.downsample is not None else x)


class BasicLayer(WindowStage):
    """One stage: ``depth`` blocks alternating regular / shifted windows, then optional patch merging
    (the window plan and the block loop are :class:`WindowStage`'s)."""

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
    ):
        def make_block(shift_size: int, rate: float) -> SwinTransformerBlock:
            return SwinTransformerBlock(
                dim, num_heads, window_size, shift_size, mlp_ratio, qkv_bias, drop, attn_drop, rate
            )

        super().__init__(depth, window_size, drop_path, use_checkpoint, make_block,
                         (lambda: PatchMerging(dim)) if downsample else None)


class SwinTransformer(nn.Module):
    """Swin Transformer; the constructor mirrors the official one.

    Args:
        img_size: pre-training image size; only the absolute position embedding (``ape``) uses it.
        patch_size, in_chans, embed_dim: patch embedding.
        num_classes: classifier classes (classification mode); 0 for no head.
        depths, num_heads: blocks and heads per stage.
        window_size: M, tokens per window side.
        mlp_ratio, qkv_bias, drop_rate, attn_drop_rate: as in the paper.
        drop_path_rate: stochastic depth, linearly increasing from 0 over all blocks.
        ape: learned absolute position embedding added after the patch embedding.
        patch_norm: LayerNorm after the patch embedding.
        out_indices: stages to return (detection mode), e.g. (0, 1, 2, 3); None = classification.
        frozen_stages: -1 none; 0 freezes the patch embedding; k >= 1 also freezes stages < k.
        use_checkpoint: activation checkpointing of every block (less memory, more compute).
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 4,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
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
    ):
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {tuple(depths)} and num_heads {tuple(num_heads)} must have the same length")
        self.num_layers = len(depths)
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.window_size = window_size
        self.img_size = img_size
        self.num_features = [embed_dim * 2**i for i in range(self.num_layers)]
        self.out_indices = tuple(out_indices) if out_indices is not None else None
        if self.out_indices is not None and any(not 0 <= i < self.num_layers for i in self.out_indices):
            raise ValueError(f"out_indices {self.out_indices} must be stage indices in [0, {self.num_layers})")
        self.frozen_stages = frozen_stages
        self.num_classes = num_classes

        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim, patch_norm)
        self.ape = ape
        if ape:
            patches_per_side = img_size // patch_size
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, patches_per_side**2, embed_dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.pos_drop = nn.Dropout(drop_rate)

        total_blocks = sum(depths)
        rates = [drop_path_rate * i / max(total_blocks - 1, 1) for i in range(total_blocks)]  # linear in depth
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            start = sum(depths[:i])
            self.layers.append(
                self._build_stage(
                    i, self.num_features[i], depth, heads, window_size, mlp_ratio, qkv_bias, drop_rate,
                    attn_drop_rate, rates[start : start + depth], downsample=i < self.num_layers - 1,
                    use_checkpoint=use_checkpoint,
                )
            )

        if self.out_indices is not None:
            for i in self.out_indices:
                self.add_module(f"norm{i}", nn.LayerNorm(self.num_features[i]))
        else:
            self.norm = nn.LayerNorm(self.num_features[-1])
            self.head = nn.Linear(self.num_features[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)
        self._freeze_stages()

    def _build_stage(self, index: int, *args, **kwargs) -> WindowStage:
        """Stage ``index`` (0-based); Swin V2 builds its own stages here, everything else is shared."""
        return BasicLayer(*args, **kwargs)

    def no_weight_decay(self) -> set[str]:
        """Parameter names that take no weight decay (official: the absolute position embedding)."""
        return {"absolute_pos_embed"}

    def no_weight_decay_keywords(self) -> set[str]:
        """Name fragments whose parameters take no weight decay (official: the relative position bias)."""
        return {"relative_position_bias_table"}

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def _freeze_stages(self) -> None:
        frozen: list[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen.append(self.patch_embed)
            if self.ape:
                self.absolute_pos_embed.requires_grad_(False)
        if self.frozen_stages >= 1:
            frozen.extend(self.layers[: self.frozen_stages])
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad_(False)

    def train(self, mode: bool = True) -> "SwinTransformer":
        """Frozen parts stay in eval mode (their dropout / drop-path stay off)."""
        super().train(mode)
        self._freeze_stages()
        return self

    def position_embedding(self, height: int, width: int) -> Tensor:
        """(1, H, W, C) absolute position embedding, bicubically resized to the token grid."""
        side = int(self.absolute_pos_embed.shape[1] ** 0.5)
        grid = self.absolute_pos_embed.view(1, side, side, self.embed_dim).permute(0, 3, 1, 2)
        if (height, width) != (side, side):
            grid = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)
        return grid.permute(0, 2, 3, 1)

    def forward_stages(self, images: Tensor) -> list[Tensor]:
        """(B, C, H, W) -> every stage's output, channels-last (B, H_i, W_i, C_i)."""
        x = self.patch_embed(images)  # (B, H/4, W/4, C)
        if self.ape:
            x = x + self.position_embedding(x.shape[1], x.shape[2])
        x = self.pos_drop(x)
        outputs = []
        for layer in self.layers:
            stage_output, x = layer(x)
            outputs.append(stage_output)
        return outputs

    def forward(self, images: Tensor) -> Tensor | list[Tensor]:
        """Classification: (B, C, H, W) -> logits (B, num_classes).
        Detection: -> [(B, C_i, H/2^(i+2), W/2^(i+2)) for i in out_indices] (NCHW, strides 4..32)."""
        stages = self.forward_stages(images)
        if self.out_indices is None:
            pooled = self.norm(stages[-1]).mean(dim=(1, 2))  # (B, C)
            return self.head(pooled)
        return [getattr(self, f"norm{i}")(stages[i]).permute(0, 3, 1, 2).contiguous() for i in self.out_indices]


def _swin(embed_dim: int, depths: tuple[int, ...], num_heads: tuple[int, ...], **overrides) -> SwinTransformer:
    return SwinTransformer(embed_dim=embed_dim, depths=depths, num_heads=num_heads, **overrides)


def swin_tiny(**overrides) -> SwinTransformer:
    """Swin-T: C = 96, depths (2, 2, 6, 2), heads (3, 6, 12, 24); 28.3 M parameters, 4.5 GFLOPs at 224²."""
    return _swin(96, (2, 2, 6, 2), (3, 6, 12, 24), **overrides)


def swin_small(**overrides) -> SwinTransformer:
    """Swin-S: C = 96, depths (2, 2, 18, 2), heads (3, 6, 12, 24); 49.6 M parameters, 8.7 GFLOPs."""
    return _swin(96, (2, 2, 18, 2), (3, 6, 12, 24), **overrides)


def swin_base(**overrides) -> SwinTransformer:
    """Swin-B: C = 128, depths (2, 2, 18, 2), heads (4, 8, 16, 32); 87.8 M parameters, 15.4 GFLOPs."""
    return _swin(128, (2, 2, 18, 2), (4, 8, 16, 32), **overrides)


def swin_large(**overrides) -> SwinTransformer:
    """Swin-L: C = 192, depths (2, 2, 18, 2), heads (6, 12, 24, 48); 196.5 M parameters."""
    return _swin(192, (2, 2, 18, 2), (6, 12, 24, 48), **overrides)
