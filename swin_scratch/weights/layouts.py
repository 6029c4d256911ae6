"""Swin checkpoint layouts: which library wrote a state dict, and the same weights under the official keys.

Swin weights reach users from a dozen codebases, each with its own key names (and, for two of
them, its own channel orders). This module is the one place that knows them all:

* :data:`LAYOUTS` is the table: a name users recognise, where such files come from, the keys that
  decide it, and what the conversion does;
* :func:`detect_layout` says which layout a state dict is in, by decisive key patterns only;
* :func:`to_official` returns the same weights under the keys of microsoft/Swin-Transformer (V1 or
  V2), the keys :class:`swin_scratch.models.swin.SwinTransformer` (and the V2 model) carry;
* :func:`is_swin_v2` tells an official V2 state dict from a V1 one.

Pure functions over in-memory dicts (torch only: no file IO, no detectron2, no peer library);
reading a file is :func:`swin_scratch.weights.files.read_checkpoint`'s job. detectron2 ``.pkl``
files hold numpy arrays: they become tensors here.

Detection: the family whose anchor key the dict holds decides (two found is an error), and the
anchor's prefix is where the backbone sits in the file:

- ``encoder.layers.0.blocks.0.layernorm_before.weight``: Hugging Face transformers (``swin.`` / ``swinv2.``);
- ``features.1.0.attn.qkv.weight``: torchvision;
- ``stages.0.blocks.0.attn.w_msa.qkv.weight``: mmdet / mmseg's own SwinTransformer;
- ``layers.0.blocks.0.attn.qkv.weight`` (or ``layers_0.``): official, timm and the detectron2 wrappers.

Then ``cpb_mlp`` / ``continuous_position_bias_mlp`` / ``logit_scale`` make it V2; inside the official
family a patch merging at the start of stage 1 (``layers.1.downsample`` without ``layers.0.downsample``)
or ``head.fc`` makes it timm >= 0.9, a detectron2 mark makes it detectron2, and a bare ``backbone.``
prefix makes it Swin-Transformer-Object-Detection (mmdet 2.x).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor

from swin_scratch.weights.files import CheckpointError

__all__ = ["LAYOUTS", "Layout", "detect_layout", "is_swin_v2", "state_dict_tensors", "to_official"]

logger = logging.getLogger(__name__)

# buffers every Swin recomputes from its config; files store them in several shapes (torchvision
# flattens relative_position_index): never converted, never reported
IGNORED_BUFFERS = ("relative_position_index", "relative_coords_table", "attn_mask")

# every key of an official V1 or V2 Swin (classification ``norm``/``head`` or detection ``norm{i}``)
OFFICIAL_KEY = re.compile(
    r"patch_embed\.(proj|norm)\.(weight|bias)"
    r"|absolute_pos_embed"
    r"|layers\.\d+\.blocks\.\d+\.(norm1|norm2|attn\.qkv|attn\.proj|attn\.cpb_mlp\.[02]|mlp\.fc1|mlp\.fc2)\.(weight|bias)"
    r"|layers\.\d+\.blocks\.\d+\.attn\.(relative_position_bias_table|q_bias|v_bias|logit_scale)"
    r"|layers\.\d+\.downsample\.(reduction|norm)\.(weight|bias)"
    r"|norm\d*\.(weight|bias)"
    r"|head\.(weight|bias)"
)
V2_MARKS = re.compile(r"(^|\.)(cpb_mlp|continuous_position_bias_mlp)\.|(^|\.)logit_scale$")

# decisive keys, one per family; group 1 is the prefix the backbone sits under ("" or ending in ".")
ANCHORS: dict[str, re.Pattern] = {
    "hf": re.compile(r"((?:.+\.)?)encoder\.layers\.0\.blocks\.0\.layernorm_before\.weight"),
    "torchvision": re.compile(r"((?:.+\.)?)features\.1\.0\.attn\.qkv\.weight"),
    "mmdet": re.compile(r"((?:.+\.)?)stages\.0\.blocks\.0\.attn\.w_msa\.qkv\.weight"),
    "official": re.compile(r"((?:.+\.)?)layers[._]0\.blocks\.0\.attn\.qkv\.weight"),
}
# SwinForImageClassification keeps the Swin under .swin, the classifier beside it
HF_MODEL_LEVELS = ("swinv2.", "swin.")
DETECTRON2_HEADS = ("proposal_generator.", "roi_heads.", "sem_seg_head.")
# the parts of a detector or segmenter beside its backbone, when they share the backbone's key prefix
DETECTOR_PARTS = DETECTRON2_HEADS + ("neck.", "rpn_head.", "roi_head.", "bbox_head.", "mask_head.", "decode_head.",
                                     "auxiliary_head.", "fpn_", "top_block.")


@dataclass(frozen=True)
class Layout:
    """One way of writing Swin weights, as a row of :data:`LAYOUTS`.

    ``prefix``, ``left_out`` and ``unplaced`` describe one state dict: :func:`detect_layout` fills in
    where the backbone keys sit, :func:`to_official` also the keys it did not convert (detector necks
    and heads, foreign extras), sorted, and among them those that look like part of the backbone but
    have no official counterpart (``unplaced``: a loader must not drop them in silence).
    """

    name: str  # what the loader prints, e.g. "timm-v1"
    title: str  # the codebase as users call it
    origin: str  # where files of this layout come from
    version: int  # Swin V1 or V2
    family: str  # the key scheme, a key of CONVERTERS (timm shares the official anchor)
    decisive: str  # the keys that decide this layout
    conversion: str  # what to_official does to it
    prefix: str = ""
    left_out: tuple[str, ...] = field(default=(), repr=False)
    unplaced: tuple[str, ...] = field(default=(), repr=False)

    def __str__(self) -> str:
        where = f", backbone under {self.prefix!r}" if self.prefix else ""
        return f"{self.name}: {self.title}; Swin V{self.version}{where}"


# ---------------------------------------------------------------------------------------------
# Renaming: (pattern, new key) rules per family, the first pattern that fullmatches wins.

Rename = Callable[[re.Match], str]
Rules = list[tuple[re.Pattern, Rename]]


def _rules(*pairs: tuple[str, Rename]) -> Rules:
    return [(re.compile(pattern), rename) for pattern, rename in pairs]


def _rename_start(rest: str, renames: Sequence[tuple[str, str]]) -> str:
    """``rest`` with its first matching leading name replaced (``mlp.0.weight`` -> ``mlp.fc1.weight``)."""
    for old, new in renames:
        if rest.startswith(old):
            return new + rest[len(old):]
    return rest


def _apply_rules(state: Mapping[str, Tensor], rules: Rules) -> tuple[dict[str, Tensor], list[str]]:
    """(renamed tensors, keys no rule matched); two keys renamed to one name is an error."""
    renamed: dict[str, Tensor] = {}
    sources: dict[str, str] = {}
    unmatched: list[str] = []
    for key, value in state.items():
        for pattern, rename in rules:
            match = pattern.fullmatch(key)
            if match:
                new = rename(match)
                if new in renamed:
                    raise CheckpointError(f"checkpoint keys {sources[new]!r} and {key!r} both convert to {new!r}")
                renamed[new], sources[new] = value, key
                break
        else:
            unmatched.append(key)
    return renamed, unmatched


IDENTITY: Rules = _rules((r"(.+)", lambda m: m[1]))

TIMM_RULES = _rules(
    # timm >= 0.9 merges patches at the start of stage N; the official model at the end of stage N-1
    (r"layers[._](\d+)\.downsample\.(.+)", lambda m: f"layers.{int(m[1]) - 1}.downsample.{m[2]}"),
    (r"layers_(\d+)\.(.+)", lambda m: f"layers.{m[1]}.{m[2]}"),  # features_only flattens the stages
    (r"head\.fc\.(weight|bias)", lambda m: f"head.{m[1]}"),
    (r"(.+)", lambda m: m[1]),
)

TORCHVISION_BLOCK = (("mlp.0.", "mlp.fc1."), ("mlp.3.", "mlp.fc2."))
TORCHVISION_RULES = _rules(
    (r"features\.0\.0\.(weight|bias)", lambda m: f"patch_embed.proj.{m[1]}"),  # features.0.1 is a Permute
    (r"features\.0\.2\.(weight|bias)", lambda m: f"patch_embed.norm.{m[1]}"),
    # features.2k+1 = stage k's blocks, features.2k+2 = the patch merging after it
    (r"features\.(\d*[13579])\.(\d+)\.(.+)",
     lambda m: f"layers.{(int(m[1]) - 1) // 2}.blocks.{m[2]}.{_rename_start(m[3], TORCHVISION_BLOCK)}"),
    (r"features\.([1-9]\d*[02468]|[2468])\.(.+)", lambda m: f"layers.{(int(m[1]) - 2) // 2}.downsample.{m[2]}"),
    (r"(norm|head)\.(weight|bias)", lambda m: m[0]),
)

# q / k / v land on temporary keys attn.q.*, attn.k.*, attn.v.*, joined by _join_query_key_value
HF_BLOCK = (
    ("layernorm_before.", "norm1."),
    ("layernorm_after.", "norm2."),
    ("attention.self.query.", "attn.q."),
    ("attention.self.key.", "attn.k."),
    ("attention.self.value.", "attn.v."),
    ("attention.q_proj.", "attn.q."),  # transformers >= 5 in memory (files keep the names above)
    ("attention.k_proj.", "attn.k."),
    ("attention.v_proj.", "attn.v."),
    ("attention.output.dense.", "attn.proj."),
    ("attention.o_proj.", "attn.proj."),
    ("attention.self.relative_position_bias_table", "attn.relative_position_bias_table"),
    ("attention.relative_position_bias.relative_position_bias_table", "attn.relative_position_bias_table"),
    ("attention.self.logit_scale", "attn.logit_scale"),
    ("attention.self.continuous_position_bias_mlp.", "attn.cpb_mlp."),
    ("intermediate.dense.", "mlp.fc1."),
    ("output.dense.", "mlp.fc2."),
)
HF_RULES = _rules(
    (r"embeddings\.patch_embeddings\.projection\.(weight|bias)", lambda m: f"patch_embed.proj.{m[1]}"),
    (r"embeddings\.norm\.(weight|bias)", lambda m: f"patch_embed.norm.{m[1]}"),
    (r"embeddings\.position_embeddings", lambda m: "absolute_pos_embed"),
    (r"encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.+)",
     lambda m: f"layers.{m[1]}.blocks.{m[2]}.{_rename_start(m[3], HF_BLOCK)}"),
    # HF's downsample sits at the end of stage N, as the official one does: same index
    (r"encoder\.layers\.(\d+)\.downsample\.(.+)", lambda m: f"layers.{m[1]}.downsample.{m[2]}"),
    (r"layernorm\.(weight|bias)", lambda m: f"norm.{m[1]}"),
    (r"hidden_states_norms\.stage(\d+)\.(weight|bias)", lambda m: f"norm{int(m[1]) - 1}.{m[2]}"),  # SwinBackbone
    (r"classifier\.(weight|bias)", lambda m: f"head.{m[1]}"),
)

MMDET_BLOCK = (("attn.w_msa.", "attn."), ("ffn.layers.0.0.", "mlp.fc1."), ("ffn.layers.1.", "mlp.fc2."))
MMDET_RULES = _rules(
    (r"patch_embed\.projection\.(weight|bias)", lambda m: f"patch_embed.proj.{m[1]}"),
    (r"stages\.(\d+)\.blocks\.(\d+)\.(.+)",
     lambda m: f"layers.{m[1]}.blocks.{m[2]}.{_rename_start(m[3], MMDET_BLOCK)}"),
    (r"stages\.(\d+)\.downsample\.(.+)", lambda m: f"layers.{m[1]}.downsample.{m[2]}"),  # end of stage N, as official
    (r"(.+)", lambda m: m[1]),  # patch_embed.norm, absolute_pos_embed, norm{i}
)


# ---------------------------------------------------------------------------------------------
# Value changes: what renaming alone cannot do.


def unfold_to_concat_order(tensor: Tensor, dim: int) -> Tensor:
    """Patch-merging channels from nn.Unfold's order to the official concat order, along ``dim`` (size 4C).

    mmdet merges 2x2 neighbours with ``nn.Unfold(2, stride=2)``: channel ``c * 4 + 2 * row + col``.
    The official model concatenates (x0, x1, x2, x3) = (row 0, col 0), (1, 0), (0, 1), (1, 1):
    channel ``(2 * col + row) * C + c``.
    """
    moved = tensor.movedim(dim, -1)  # (..., 4C)
    lead = moved.dim() - 1
    unfolded = moved.reshape(*moved.shape[:-1], moved.shape[-1] // 4, 2, 2)  # (..., C, row, col)
    concat = unfolded.permute(*range(lead), lead + 2, lead + 1, lead)  # (..., col, row, C)
    return concat.reshape(moved.shape).movedim(-1, dim).contiguous()


def _reorder_mmdet_patch_merging(state: dict[str, Tensor]) -> None:
    for key, value in state.items():
        if re.fullmatch(r"layers\.\d+\.downsample\.reduction\.weight", key):
            state[key] = unfold_to_concat_order(value, dim=1)  # (2C, 4C): the input channels
        elif re.fullmatch(r"layers\.\d+\.downsample\.norm\.(weight|bias)", key):
            state[key] = unfold_to_concat_order(value, dim=0)  # (4C,)


def _join_query_key_value(state: dict[str, Tensor], version: int) -> None:
    """HF's separate query / key / value -> ``attn.qkv.weight`` (+ ``qkv.bias`` for V1, ``q_bias``/``v_bias`` for V2).

    Concatenated in (q, k, v) order with heads contiguous inside each, as the official qkv Linear
    is split. Parts that do not fit (a block missing one, a V2 key bias) keep their temporary
    ``attn.q/k/v.*`` keys and are left out.
    """
    blocks = sorted({key[: -len(".q.weight")] for key in state if key.endswith(".attn.q.weight")})
    for block in blocks:
        weights = [f"{block}.{part}.weight" for part in "qkv"]
        biases = [f"{block}.{part}.bias" for part in "qkv"]
        if not all(key in state for key in weights):
            continue
        state[f"{block}.qkv.weight"] = torch.cat([state.pop(key) for key in weights])  # (3C, C)
        if version == 2:  # Swin V2: a query and a value bias, no key bias
            for part, official in (("q", "q_bias"), ("v", "v_bias")):
                if f"{block}.{part}.bias" in state:
                    state[f"{block}.{official}"] = state.pop(f"{block}.{part}.bias")
        elif all(key in state for key in biases):
            state[f"{block}.qkv.bias"] = torch.cat([state.pop(key) for key in biases])  # (3C,)


def _split_torchvision_v2_bias(state: dict[str, Tensor]) -> None:
    """torchvision V2 keeps a full (3C,) qkv bias and zeroes its k third at every forward: -> q_bias, v_bias."""
    for key in [key for key in state if key.endswith(".attn.qkv.bias")]:
        bias = state.pop(key)
        channels = bias.shape[0] // 3
        block = key[: -len(".qkv.bias")]
        state[f"{block}.q_bias"], state[f"{block}.v_bias"] = bias[:channels], bias[2 * channels:]


def _normalise_logit_scale(state: dict[str, Tensor]) -> None:
    """logit_scale as the official (heads, 1, 1), whatever leading ones a library stored."""
    for key, value in state.items():
        if key.endswith(".attn.logit_scale"):
            state[key] = value.reshape(-1, 1, 1)


# ---------------------------------------------------------------------------------------------
# One converter per family: backbone keys (prefix stripped) -> (official keys, keys left out).

Converted = tuple[dict[str, Tensor], list[str]]


def _from_official(backbone: Mapping[str, Tensor], version: int) -> Converted:
    return _apply_rules(backbone, IDENTITY)


def _from_timm(backbone: Mapping[str, Tensor], version: int) -> Converted:
    return _apply_rules(backbone, TIMM_RULES)


def _from_torchvision(backbone: Mapping[str, Tensor], version: int) -> Converted:
    state, left = _apply_rules(backbone, TORCHVISION_RULES)
    if version == 2:
        _split_torchvision_v2_bias(state)
    return state, left


def _from_hf(backbone: Mapping[str, Tensor], version: int) -> Converted:
    without_model_level = {_strip_any(key, HF_MODEL_LEVELS): value for key, value in backbone.items()}
    state, left = _apply_rules(without_model_level, HF_RULES)
    _join_query_key_value(state, version)
    return state, left


def _from_mmdet(backbone: Mapping[str, Tensor], version: int) -> Converted:
    state, left = _apply_rules(backbone, MMDET_RULES)
    _reorder_mmdet_patch_merging(state)
    return state, left


CONVERTERS: dict[str, Callable[[Mapping[str, Tensor], int], Converted]] = {
    "official": _from_official,
    "timm": _from_timm,
    "torchvision": _from_torchvision,
    "hf": _from_hf,
    "mmdet": _from_mmdet,
}


# ---------------------------------------------------------------------------------------------
# The table.

_OFFICIAL_ANCHOR = "`layers.0.blocks.0.attn.qkv.weight`"
_V2_KEYS = "`attn.cpb_mlp.*`, `attn.logit_scale`, `attn.q_bias`/`v_bias`"
_DETECTRON2_MARK = (
    "official keys plus a detectron2 mark: `matching_heuristics`/`__author__` beside `model`, numpy arrays, "
    "a `bottom_up.` prefix, or detectron2 heads (`proposal_generator.`, `roi_heads.`, `sem_seg_head.`)"
)
_DETECTRON2_ORIGIN = (
    "SwinT_detectron2 convert_to_d2.py (`backbone.bottom_up.`), Mask2Former convert-pretrained-swin-model-to-d2.py "
    "(no prefix, `matching_heuristics`), Mask2Former / detectron2 model-zoo `.pkl` (`backbone.`), this project's "
    "detectron2 checkpoints (`backbone.bottom_up.swin.`)"
)
_TORCHVISION_CONVERSION = (
    "features.0.0 / features.0.2 -> patch_embed.proj / patch_embed.norm; features.2k+1.M -> layers.k.blocks.M; "
    "features.2k+2 -> layers.k.downsample; mlp.0 / mlp.3 -> mlp.fc1 / mlp.fc2; flattened index buffers dropped"
)
_HF_CONVERSION = (
    "swin.embeddings.patch_embeddings.projection / embeddings.norm -> patch_embed.proj / patch_embed.norm; "
    "encoder.layers.N.blocks.M -> layers.N.blocks.M; layernorm_before / layernorm_after -> norm1 / norm2; "
    "attention.output.dense -> attn.proj; intermediate.dense / output.dense -> mlp.fc1 / mlp.fc2; "
    "encoder.layers.N.downsample -> layers.N.downsample (end of stage N in both); swin.layernorm -> norm; "
    "classifier -> head; SwinBackbone hidden_states_norms.stageN -> normN-1"
)

LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            "official-v1", "microsoft/Swin-Transformer (Swin V1; also timm < 0.9)",
            "github.com/microsoft/Swin-Transformer releases, e.g. swin_tiny_patch4_window7_224.pth ({'model': ...})",
            1, "official",
            f"{_OFFICIAL_ANCHOR} with the patch merging at the end of stage 0 (`layers.0.downsample.*`) "
            "or `head.weight`",
            "none: keys kept; stored relative_position_index / attn_mask buffers dropped",
        ),
        Layout(
            "official-v2", "microsoft/Swin-Transformer Swin V2 (also timm < 0.9 swinv2)",
            "github.com/microsoft/Swin-Transformer V2 releases, e.g. swinv2_tiny_patch4_window8_256.pth",
            2, "official",
            f"as official-v1, with {_V2_KEYS}",
            "none: keys kept; relative_coords_table / relative_position_index buffers dropped",
        ),
        Layout(
            "mmdet-official", "Swin-Transformer-Object-Detection (mmdet 2.x fork, official backbone keys)",
            "github.com/SwinTransformer/Swin-Transformer-Object-Detection COCO detectors ({'state_dict': ...})",
            1, "official",
            f"{_OFFICIAL_ANCHOR} under `backbone.`, no detectron2 mark; `neck.`/`rpn_head.`/`roi_head.` beside it",
            "`backbone.` stripped; neck and heads left out (reported)",
        ),
        Layout(
            "mmdet-swin", "mmdet 2.x / 3.x (and mmseg) SwinTransformer",
            "open-mmlab model zoo, or official weights through mmdet's swin2mmdet converter",
            1, "mmdet",
            "`backbone.stages.0.blocks.0.attn.w_msa.qkv.weight`",
            "stages -> layers; attn.w_msa -> attn; ffn.layers.0.0 / ffn.layers.1 -> mlp.fc1 / mlp.fc2; "
            "patch_embed.projection -> patch_embed.proj; downsample reduction / norm channels from nn.Unfold order "
            "back to the official (x0, x1, x2, x3) concat order; neck and heads left out",
        ),
        Layout(
            "timm-v1", "timm >= 0.9 SwinTransformer (swin_*_patch4_window*)",
            "huggingface/pytorch-image-models, timm.create_model('swin_tiny_patch4_window7_224').state_dict()",
            1, "timm",
            f"{_OFFICIAL_ANCHOR} with the patch merging at the start of stage N >= 1 (`layers.1.downsample.*`, "
            "none in stage 0) or `head.fc.weight`; features_only models write `layers_N.`",
            "layers.N.downsample -> layers.N-1.downsample; head.fc -> head; layers_N -> layers.N",
        ),
        Layout(
            "timm-v2", "timm >= 0.9 SwinTransformerV2 (swinv2_*_window*)",
            "timm.create_model('swinv2_tiny_window8_256').state_dict()",
            2, "timm",
            f"as timm-v1, with {_V2_KEYS}",
            "as timm-v1 (V2 patch merging: reduction, then norm over 2C)",
        ),
        Layout(
            "torchvision-v1", "torchvision.models.swin_t / swin_s / swin_b",
            "pytorch/vision, Swin_T_Weights... files and model.state_dict()",
            1, "torchvision",
            "`features.1.0.attn.qkv.weight` (features.0 embeds patches, odd features.N are stages, even ones merge)",
            _TORCHVISION_CONVERSION,
        ),
        Layout(
            "torchvision-v2", "torchvision.models.swin_v2_t / swin_v2_s / swin_v2_b",
            "pytorch/vision, Swin_V2_T_Weights... files and model.state_dict()",
            2, "torchvision",
            "as torchvision-v1, with `attn.cpb_mlp.*` and `attn.logit_scale`",
            f"{_TORCHVISION_CONVERSION}; the full (3C,) attn.qkv.bias -> q_bias (first C) and v_bias (last C), its "
            "k third (zeroed by torchvision at every forward) dropped",
        ),
        Layout(
            "hf-swin", "Hugging Face transformers Swin (SwinModel / SwinForImageClassification / SwinBackbone)",
            "huggingface.co microsoft/swin-* repositories: model.safetensors / pytorch_model.bin",
            1, "hf",
            "`swin.encoder.layers.0.blocks.0.layernorm_before.weight` (the `swin.` level optional)",
            f"{_HF_CONVERSION}; attention.self.query / key / value (transformers >= 5 in memory: attention.q_proj / "
            "k_proj / v_proj, relative_position_bias.relative_position_bias_table) concatenated into attn.qkv",
        ),
        Layout(
            "hf-swinv2", "Hugging Face transformers Swinv2 (Swinv2Model / Swinv2ForImageClassification)",
            "huggingface.co microsoft/swinv2-* repositories",
            2, "hf",
            "as hf-swin under `swinv2.`, with `attention.self.continuous_position_bias_mlp.*` and `logit_scale`",
            f"{_HF_CONVERSION}; query / key / value weights concatenated into attn.qkv; query / value bias -> q_bias / "
            "v_bias (the key has none); continuous_position_bias_mlp -> cpb_mlp; logit_scale -> (heads, 1, 1)",
        ),
        Layout(
            "detectron2-v1", "detectron2 file of official Swin V1 weights",
            _DETECTRON2_ORIGIN, 1, "official", _DETECTRON2_MARK,
            "numpy arrays -> tensors; prefix stripped; FPN and heads left out (reported)",
        ),
        Layout(
            "detectron2-v2", "detectron2 file of official Swin V2 weights",
            _DETECTRON2_ORIGIN, 2, "official", f"{_DETECTRON2_MARK}; {_V2_KEYS}",
            "numpy arrays -> tensors; prefix stripped; FPN and heads left out (reported)",
        ),
    )
}


# ---------------------------------------------------------------------------------------------
# Unwrapping: {"model": ...}, {"state_dict": ...}, {"module": ...}, module. prefixes, numpy arrays.

WRAPPERS = ("model", "state_dict", "module")
DETECTRON2_FILE_KEYS = ("matching_heuristics", "__author__")
WRAPPING_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel / DataParallel, torch.compile


@dataclass
class _Tensors:
    """A state dict as tensors, with what the wrapping said about its origin."""

    tensors: dict[str, Tensor]
    detectron2_file: bool  # numpy arrays or detectron2's file keys


def _is_array(value: Any) -> bool:
    """A numpy array (detectron2 .pkl files), recognised without importing numpy."""
    return (not isinstance(value, Tensor) and hasattr(value, "__array__") and hasattr(value, "dtype")
            and hasattr(value, "shape"))


def _as_tensor(value: Any) -> Tensor:
    if isinstance(value, Tensor):
        return value
    writable = getattr(getattr(value, "flags", None), "writeable", False)
    return torch.from_numpy(value) if writable else torch.tensor(value)  # unpickled arrays may be read-only


def _strip_any(key: str, prefixes: Sequence[str]) -> str:
    for prefix in prefixes:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def _strip_wrapping(key: str) -> str:
    """``module.module._orig_mod.layers...`` -> ``layers...``."""
    while key.startswith(WRAPPING_PREFIXES):
        key = _strip_any(key, WRAPPING_PREFIXES)
    return key


def _unwrap(checkpoint: Any) -> _Tensors:
    """The tensors of a (wrapped) state dict, numpy arrays made tensors, wrapping prefixes removed."""
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"a state dict must be a dict of tensors, not a {type(checkpoint).__name__}")
    state: Mapping = checkpoint
    detectron2_file = False
    while not any(isinstance(value, Tensor) or _is_array(value) for value in state.values()):
        detectron2_file |= any(key in state for key in DETECTRON2_FILE_KEYS)
        inner = next((state[key] for key in WRAPPERS if isinstance(state.get(key), Mapping)), None)
        if inner is None:
            break
        state = inner
    tensors: dict[str, Tensor] = {}
    for key, value in state.items():
        if isinstance(value, Tensor) or _is_array(value):
            detectron2_file |= _is_array(value)
            tensors[_strip_wrapping(key)] = _as_tensor(value)
    if not tensors:
        raise CheckpointError(
            f"the checkpoint holds no tensors (top-level keys: {_first(list(checkpoint))}); expected a Swin state "
            f"dict, bare or under 'model' / 'state_dict'"
        )
    return _Tensors(tensors, detectron2_file)


def state_dict_tensors(checkpoint: Mapping[str, Any]) -> dict[str, Tensor]:
    """The tensors of a (wrapped) state dict under their own keys, as :func:`to_official` reads them:
    wrappers and ``module.`` prefixes removed, numpy arrays made tensors."""
    return _unwrap(checkpoint).tensors


# ---------------------------------------------------------------------------------------------
# Detection.


def _anchor_matches(keys: Sequence[str]) -> list[tuple[str, str]]:
    """(family, prefix) for every anchor key found; HF's model level (swin. / swinv2.) is not prefix."""
    found: list[tuple[str, str]] = []
    for family, anchor in ANCHORS.items():
        for key in keys:
            match = anchor.fullmatch(key)
            if match:
                prefix = match[1]
                if family == "hf":
                    for level in HF_MODEL_LEVELS:
                        if prefix == level or prefix.endswith("." + level):
                            prefix = prefix[: -len(level)]
                            break
                found.append((family, prefix))
    return found


def _is_timm_layout(backbone_keys: Sequence[str]) -> bool:
    """timm >= 0.9: patch merging at the start of stages 1.. (none in stage 0), head.fc, or features_only's layers_N."""
    if any(re.match(r"layers_\d+\.", key) for key in backbone_keys) or "head.fc.weight" in backbone_keys:
        return True
    merges_in_stage = {int(m[1]) for key in backbone_keys if (m := re.match(r"layers\.(\d+)\.downsample\.", key))}
    return bool(merges_in_stage) and 0 not in merges_in_stage


def _layout_of(tensors: _Tensors) -> Layout:
    keys = list(tensors.tensors)
    matches = _anchor_matches(keys)
    if not matches:
        raise _not_swin_error(keys)
    if len(matches) > 1:
        where = ", ".join(f"{family} keys under {prefix!r}" for family, prefix in matches)
        raise CheckpointError(
            f"the state dict holds {len(matches)} Swin backbones ({where}); keep the keys of one of them "
            "(e.g. the model's, not its EMA copy) and convert that"
        )
    family, prefix = matches[0]
    backbone_keys = [key[len(prefix):] for key in keys if key.startswith(prefix)]
    version = 2 if any(V2_MARKS.search(key) for key in backbone_keys) else 1
    if family == "mmdet" and version == 2:
        raise CheckpointError(
            "the state dict is an mmpretrain Swin V2 (stages.N.blocks.M.attn.w_msa.cpb_mlp keys), which is not a "
            f"supported layout; accepted Swin layouts: {', '.join(LAYOUTS)}"
        )
    return replace(LAYOUTS[_layout_name(family, version, prefix, backbone_keys, keys, tensors.detectron2_file)],
                   prefix=prefix)


def _layout_name(family: str, version: int, prefix: str, backbone_keys: Sequence[str], keys: Sequence[str],
                 detectron2_file: bool) -> str:
    if family == "hf":
        return "hf-swinv2" if version == 2 else "hf-swin"
    if family == "torchvision":
        return f"{family}-v{version}"
    if family == "mmdet":
        return "mmdet-swin"
    if _is_timm_layout(backbone_keys):
        return f"timm-v{version}"
    detectron2 = (
        detectron2_file
        or "bottom_up." in prefix
        or any(key.startswith(DETECTRON2_HEADS) for key in keys)
    )
    if detectron2:
        return f"detectron2-v{version}"
    if prefix == "backbone." and version == 1:
        return "mmdet-official"
    return f"official-v{version}"


def detect_layout(state: Mapping[str, Any]) -> Layout:
    """The layout of a Swin state dict (bare or wrapped in ``model`` / ``state_dict``), its ``prefix`` filled in.

    Raises :class:`CheckpointError` (one line: what the dict looks like, and the accepted layouts) for
    a state dict of another architecture.
    """
    return _layout_of(_unwrap(state))


def _locate(layout: Layout, tensors: _Tensors) -> Layout:
    """``layout`` as given by the caller, with the prefix its family's anchor key sits under."""
    anchor_family = "official" if layout.family == "timm" else layout.family  # one anchor, two key schemes
    prefixes = [prefix for family, prefix in _anchor_matches(list(tensors.tensors)) if family == anchor_family]
    if len(prefixes) != 1:
        found = "no" if not prefixes else f"{len(prefixes)} ({', '.join(map(repr, prefixes))})"
        raise CheckpointError(
            f"the state dict is not in layout {layout.name}: {found} keys like {ANCHORS[anchor_family].pattern!r}; "
            "call to_official without a layout to detect it"
        )
    return replace(layout, prefix=prefixes[0])


# ---------------------------------------------------------------------------------------------
# Conversion.


def to_official(state: Mapping[str, Any], layout: Layout | None = None) -> tuple[dict[str, Tensor], Layout]:
    """The Swin weights of ``state`` under official keys, and the layout they came in.

    Args:
        state: a state dict in any layout of :data:`LAYOUTS`, bare or wrapped (``{"model": ...}``,
            ``{"state_dict": ...}``), with or without ``module.`` prefixes; numpy arrays allowed.
        layout: a row of :data:`LAYOUTS` to skip detection; None detects it.

    Returns:
        (official state dict: V1 or V2 keys of microsoft/Swin-Transformer, tensors only, stored index
        buffers dropped; the layout with ``prefix`` and ``left_out`` filled in: the keys not converted,
        e.g. a detector's neck and heads).
    """
    tensors = _unwrap(state)
    found = _layout_of(tensors) if layout is None else _locate(layout, tensors)
    prefix = found.prefix
    outside = [key for key in tensors.tensors if not key.startswith(prefix)]
    backbone = {
        key[len(prefix):]: value
        for key, value in tensors.tensors.items()
        if key.startswith(prefix) and not key.endswith(IGNORED_BUFFERS)
    }
    converted, unconverted = CONVERTERS[found.family](backbone, found.version)
    if found.version == 2:
        _normalise_logit_scale(converted)
    official = {key: value for key, value in converted.items() if OFFICIAL_KEY.fullmatch(key)}
    foreign = [key for key in converted if key not in official]
    left_out = tuple(sorted(outside + [prefix + key for key in unconverted + foreign]))
    unplaced = tuple(sorted(prefix + key for key in unconverted + foreign if not key.startswith(DETECTOR_PARTS)))
    _check_converted(official, found)
    if left_out:
        logger.info("to_official: %s; %d keys left out: %s", found, len(left_out), _first(list(left_out)))
    return official, replace(found, left_out=left_out, unplaced=unplaced)


def _check_converted(official: Mapping[str, Tensor], layout: Layout) -> None:
    if "patch_embed.proj.weight" not in official or not any(".blocks." in key for key in official):
        raise CheckpointError(
            f"converting a {layout.name} state dict gave no patch embedding or blocks; the file is not a whole "
            f"Swin backbone in that layout (converted keys: {_first(list(official))})"
        )
    if is_swin_v2(official) != (layout.version == 2):
        have = "V2" if is_swin_v2(official) else "V1"
        raise CheckpointError(
            f"layout {layout.name} is Swin V{layout.version} but the converted keys are {have}; "
            "call to_official without a layout to detect it"
        )


def is_swin_v2(official_state: Mapping[str, Any]) -> bool:
    """True for official Swin V2 keys (``attn.logit_scale`` / ``attn.cpb_mlp``), False for V1."""
    return any(V2_MARKS.search(key) for key in official_state)


# ---------------------------------------------------------------------------------------------
# Not a Swin: say what it looks like.

NOT_SWIN: tuple[tuple[str, re.Pattern], ...] = tuple(
    (description, re.compile(pattern))
    for description, pattern in (
        ("timm's SwinTransformerV2Cr (swinv2_cr_*: attn.meta_mlp keys), "
         "a Swin V2 variant that is not a supported layout",
         r"(^|\.)attn\.meta_mlp\."),
        ("a ResNet (conv1/layer1… keys)", r"(^|\.)(conv1\.weight|layer1\.0\.|res2\.0\.|stem\.conv1\.)"),
        ("a BERT-like text Transformer (embeddings.word_embeddings… keys)", r"(^|\.)word_embeddings\."),
        ("a GPT-like language model (wte/h.N.attn… keys)", r"(^|\.)(wte\.weight|h\.\d+\.attn\.)"),
        ("a ViT (cls_token/pos_embed/blocks.N.attn… keys)",
         r"(^|\.)(cls_token|class_token|blocks\.\d+\.attn\.qkv\.|encoder\.layers\.encoder_layer_\d+\.)"),
        ("a ConvNeXt (dwconv / downsample_layers… keys)", r"(^|\.)(dwconv\.|downsample_layers\.)"),
        ("a MobileNet/EfficientNet/VGG-style CNN (features.N… convolution keys)", r"^features\.\d+\."),
    )
)


def _not_swin_error(keys: Sequence[str]) -> CheckpointError:
    """One line: what a non-Swin state dict looks like, and the Swin layouts that are accepted."""
    looks = next((description for description, pattern in NOT_SWIN if any(pattern.search(key) for key in keys)), None)
    what = f"it looks like {looks}" if looks else f"no key of any Swin layout (first keys: {_first(list(keys))})"
    return CheckpointError(
        f"not a Swin checkpoint: {what}; accepted Swin layouts: {', '.join(LAYOUTS)} "
        "(swin_scratch.weights.layouts.LAYOUTS)"
    )


def _first(keys: list[str], count: int = 4) -> str:
    return ", ".join(keys[:count]) + (f", ... ({len(keys)} in all)" if len(keys) > count else "")


def markdown_table() -> str:
    """:data:`LAYOUTS` as the Markdown table docs/weights.md shows (a test keeps the two in step)."""
    rows = ["| layout | what it is | where such files come from | decided by | what the loader does |",
            "|---|---|---|---|---|"]
    for layout in LAYOUTS.values():
        cells = (f"`{layout.name}`", layout.title, layout.origin, layout.decisive, layout.conversion)
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"
