"""Which architecture a state_dict belongs to, and how well it fits.

Our registry's models (``mlp``, ``vgg``, ``resnet``; backend/training/models.py) are recognised from their
key names, and their hyperparameters (depth, width, stages, ...) read from the tensor shapes. Torchvision
classifiers are named by the user (``tv:resnet18``) or suggested by comparing key names and shapes. The
number of classes is read from the classifier's weights, and the expected input (features, channels)
from the first layer's.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from backend.errors import ClusterScopeError

SHOW = 5  # how many keys of each kind an error names
POPULAR = ("resnet18", "resnet34", "resnet50", "vgg16", "vgg11", "mobilenet_v2", "efficientnet_b0", "densenet121")


class ArchitectureError(ClusterScopeError):
    """The checkpoint does not fit the chosen architecture or data set."""


@dataclass
class Architecture:
    """What the weights say about the model: its config, classes and expected input."""

    model: dict[str, Any]  # ModelConfig keys: name and hyperparameters
    num_classes: int
    in_features: int | None = None  # vector models: inputs per sample
    in_channels: int | None = None  # image models: channels of the first convolution
    image_size: int | None = None  # image models whose weights fix the input size (ViT)
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.model["name"])


# --------------------------------------------------------------------------- our registry


def _count(state: dict[str, torch.Tensor], pattern: str) -> list[tuple[int, ...]]:
    rx = re.compile(pattern)
    return sorted({tuple(int(g) for g in m.groups()) for k in state if (m := rx.fullmatch(k))})


def infer_registry(state: dict[str, torch.Tensor]) -> Architecture | None:
    """An ``mlp``, ``vgg`` or ``resnet`` config read from key names and shapes, or None."""
    if "fc1.linear.weight" in state and "classifier.weight" in state:
        w = state["fc1.linear.weight"]  # (width, in_features)
        depth = len(_count(state, r"fc(\d+)\.linear\.weight"))
        return Architecture({"name": "mlp", "depth": depth, "width": int(w.shape[0]), "batch_norm": "fc1.bn.weight" in state},
                            int(state["classifier.weight"].shape[0]), in_features=int(w.shape[1]))
    if "conv1_1.conv.weight" in state and "classifier.weight" in state:
        convs = _count(state, r"conv(\d+)_(\d+)\.conv\.weight")
        w = state["conv1_1.conv.weight"]  # (c_out, c_in, 3, 3)
        return Architecture({"name": "vgg", "stages": max(s for s, _ in convs), "convs_per_stage": max(j for _, j in convs),
                             "width_factor": float(w.shape[0]) / 32, "batch_norm": "conv1_1.bn.weight" in state},
                            int(state["classifier.weight"].shape[0]), in_channels=int(w.shape[1]))
    if "stem.conv.weight" in state and "classifier.weight" in state:
        w = state["stem.conv.weight"]
        n = len(_count(state, r"stage1\.block(\d+)\.conv1\.weight"))
        return Architecture({"name": "resnet", "depth": 6 * n + 2, "width_factor": float(w.shape[0]) / 16},
                            int(state["classifier.weight"].shape[0]), in_channels=int(w.shape[1]))
    return None


# --------------------------------------------------------------------------- torchvision


def _tv_names() -> list[str]:
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


@functools.lru_cache(maxsize=256)
def _tv_signature(name: str, num_classes: int = 1000, *, cpu_fallback: bool = True) -> dict[str, tuple[int, ...]]:
    """{key: shape} of a torchvision model, built on the meta device (no memory, no init cost) when it can be.

    A few builders compute on tensors (regnet) and need the CPU; suggestions skip them (empty signature)
    rather than pay for building a large model."""
    import torchvision

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.device("meta"):
                model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
        except (NotImplementedError, RuntimeError):
            if not cpu_fallback:
                return {}
            model = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def infer_torchvision(name: str, state: dict[str, torch.Tensor]) -> Architecture:
    """``tv:<name>``: the classes from the keys whose shape depends on num_classes; channels from the first conv."""
    if name not in _tv_names():
        import difflib

        close = difflib.get_close_matches(name, _tv_names(), n=3)
        hint = f" Did you mean {', '.join('tv:' + c for c in close)}?" if close else ""
        raise ArchitectureError(f"architecture 'tv:{name}' is not a torchvision classification model.{hint}")
    a, b = _tv_signature(name, 1000), _tv_signature(name, 7)
    head = [k for k in a if a[k] != b[k]]
    present = [k for k in head if k in state and state[k].dim() >= 1]
    if not present:
        raise ArchitectureError(mismatch_message(f"tv:{name}", a, state))
    num_classes = int(state[present[0]].shape[0])
    first = next((v for v in state.values() if v.dim() == 4), None)
    arch = Architecture({"name": f"tv:{name}"}, num_classes, in_channels=int(first.shape[1]) if first is not None else None)
    pos, proj = state.get("encoder.pos_embedding"), state.get("conv_proj.weight")
    if pos is not None and proj is not None:  # a ViT's position embeddings fix its image size: patches + 1 class token
        arch.image_size = math.isqrt(int(pos.shape[1]) - 1) * int(proj.shape[-1])
    return arch


def suggest(state: dict[str, torch.Tensor], *, exclude: str = "") -> list[str]:
    """Architectures whose keys fit the state_dict best: a registry model, else torchvision candidates."""
    reg = infer_registry(state)
    if reg is not None:
        return [reg.name] if reg.name != exclude else []
    keys = set(state)
    if not keys:
        return []

    def score(name: str) -> float:
        sig = _tv_signature(name, cpu_fallback=False)
        if not sig:
            return 0.0
        same = sum(1 for k in keys & set(sig) if tuple(state[k].shape) == sig[k] or k not in sig)
        return same / len(keys | set(sig))

    families: dict[str, list[str]] = {}
    for n in _tv_names():
        families.setdefault(re.match(r"[a-z]+", n).group(0), []).append(n)  # type: ignore[union-attr]
    reps = sorted(families, key=lambda f: -score(families[f][0]))[:3]  # one build per family, then the best 3 in full
    ranked = sorted(((score(n), n) for f in reps for n in families[f]), reverse=True)
    return [f"tv:{n}" for s, n in ranked[:3] if s > 0.5 and f"tv:{n}" != exclude]


# --------------------------------------------------------------------------- resolving and fitting


def resolve(arch: str, state: dict[str, torch.Tensor], *, scripted_name: str = "") -> Architecture:
    """The architecture named ``arch`` (``auto``, ``mlp``, ``vgg``, ``resnet`` or ``tv:<name>``) for ``state``."""
    arch = (arch or "auto").strip()
    if arch.startswith("tv:"):
        return infer_torchvision(arch[3:], state)
    reg = infer_registry(state)
    if arch == "auto":
        if reg is not None:
            return reg
        for name in POPULAR:  # the usual suspects first: one cheap build each instead of a scan of torchvision
            if _fits(name, state):
                return infer_torchvision(name, state)
        found = suggest(state)
        if found and found[0].startswith("tv:") and _fits(found[0][3:], state):
            return infer_torchvision(found[0][3:], state)
        hint = f" The closest torchvision models are {', '.join(found)}." if found else ""
        what = f" (the TorchScript module's class is {scripted_name!r})" if scripted_name else ""
        raise ArchitectureError(f"cannot tell the architecture of this checkpoint{what}: its keys ({_keys(list(state))}) "
                                f"match no model of the registry (mlp, vgg, resnet) or of torchvision.{hint} "
                                "Choose the architecture (--arch tv:<name>).")
    if arch not in ("mlp", "vgg", "resnet"):
        raise ArchitectureError(f"architecture must be auto, mlp, vgg, resnet or tv:<torchvision name>; got {arch!r}.")
    if reg is None or reg.name != arch:
        from backend.config import ModelConfig
        from backend.training.models import build_model

        shape = (3, 32, 32) if arch != "mlp" else (64,)
        model = build_model(ModelConfig(name=arch), shape, 10, seed=0)
        raise ArchitectureError(mismatch_message(arch, {k: tuple(v.shape) for k, v in model.state_dict().items()}, state))
    return reg


def _fits(name: str, state: dict[str, torch.Tensor]) -> bool:
    sig = _tv_signature(name)
    if len(sig) != len(state) and len({k for k in sig if not k.endswith("num_batches_tracked")}) != len(state):
        return False
    head = {k for k, v in _tv_signature(name, 7).items() if v != sig[k]}
    missing, unexpected, shapes = compare(sig, state)
    return not missing and not unexpected and all(k in head for k, _, _ in shapes)


def compare(expected: dict[str, tuple[int, ...]], state: dict[str, torch.Tensor]
            ) -> tuple[list[str], list[str], list[tuple[str, tuple[int, ...], tuple[int, ...]]]]:
    """(missing keys, unexpected keys, (key, expected shape, found shape)); BN counters may be absent."""
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [(k, expected[k], tuple(state[k].shape)) for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    return missing, unexpected, shapes


def _keys(keys: list[str]) -> str:
    more = f" and {len(keys) - SHOW} more" if len(keys) > SHOW else ""
    return ", ".join(keys[:SHOW]) + more


def mismatch_message(arch: str, expected: dict[str, tuple[int, ...]], state: dict[str, torch.Tensor]) -> str:
    """The house message for a checkpoint that does not fit ``arch``: first keys of each kind, and a suggestion."""
    missing, unexpected, shapes = compare(expected, state)
    parts = []
    if missing:
        parts.append(f"missing keys: {_keys(missing)}")
    if unexpected:
        parts.append(f"unexpected keys: {_keys(unexpected)}")
    if shapes:
        shown = [f"{k} expects {list(e)}, checkpoint has {list(f)}" for k, e, f in shapes[:SHOW]]
        more = f" and {len(shapes) - SHOW} more" if len(shapes) > SHOW else ""
        parts.append(f"shape mismatches: {'; '.join(shown)}{more}")
    found = suggest(state, exclude=arch)
    hint = f" It looks like {' or '.join(found)}; choose that architecture." if found else \
        " Choose the architecture the checkpoint was trained with."
    return f"the checkpoint does not fit architecture {arch!r}: {'; '.join(parts) or 'no difference found'}.{hint}"


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], arch: str, name: str) -> None:
    """Load ``state`` into ``model`` strictly (BN counters excepted), or raise with the keys that differ."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing, unexpected, shapes = compare(expected, state)
    if missing or unexpected or shapes:
        raise ArchitectureError(f"checkpoint {name!r}: " + mismatch_message(arch, expected, state))
    full = dict(model.state_dict())
    full.update({k: v.to(full[k].dtype) for k, v in state.items()})
    model.load_state_dict(full, strict=True)
