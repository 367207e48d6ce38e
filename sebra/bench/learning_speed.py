"""How fast a network learns each shortcut of a benchmark variant alone: a label-using calibration measure.

Two variants can have the same ERM gaps and still differ in *when* each shortcut is learned, and that is what decides
whether Stage 1's first elimination wave is graded by both shortcuts or partitioned by the faster one (BENCHMARKS.md
§7.5). The measure: train the benchmark's ERM network (same backbone, optimizer, batch size, augmentation) to predict
one attribute's value from the training images, and count optimizer steps until its accuracy on the validation split
reaches ``threshold``. The validation split is balanced (each attribute independent of the class and of the other
attribute), so only the attribute itself scores there. A training pass of a family variant is 60 steps (7600 images,
batch 128): "learned within the first pass" means under 60 steps.

A plain torch loop (not Lightning) on purpose: it evaluates every ``eval_every`` optimizer steps and stops at the
first crossing, on arrays already in memory, which a Trainer would only wrap.

    python -m sebra.bench.learning_speed --variants builtin,stripes-objcolor --seeds 0
"""

from __future__ import annotations

import argparse
import json
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from sebra.backbones import Classifier
from sebra.datasets.family import VariantSpec, render_variant, variant
from sebra.datasets.transforms import IMAGENET_MEAN, IMAGENET_STD, augment_batch

__all__ = ["attribute_speed", "variant_speeds"]

Attribute = Literal["a", "b"]
_STORED = {"a": "bg", "b": "coobj"}


def _as_float(images: np.ndarray) -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` -> float ``[N, 3, H, W]`` in [0, 1] (augmented before normalising, as the data modules)."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)


def attribute_speed(
    spec: VariantSpec,
    attribute: Attribute,
    *,
    seed: int = 0,
    threshold: float = 0.95,
    max_steps: int = 600,
    eval_every: int = 5,
    backbone: str = "test_resnet",
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    augment: str = "crop_flip",
    data: dict | None = None,
) -> dict[str, float]:
    """Optimizer steps until a network predicting ``attribute`` alone reaches ``threshold`` on validation.

    Returns ``{"steps": n or nan, "val_acc": accuracy at that point (or the best seen), "passes": n / steps per pass}``;
    ``steps`` is NaN when the threshold was not reached within ``max_steps`` (then read it as "more than
    ``max_steps``").
    """
    data = data if data is not None else render_variant(spec)
    key = _STORED[attribute]
    gen = torch.Generator().manual_seed(seed)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    x_tr = _as_float(data["train"]["images"])
    y_tr = torch.from_numpy(data["train"][key]).long()
    x_va = (_as_float(data["val"]["images"]) - mean) / std
    y_va = torch.from_numpy(data["val"][key]).long()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Classifier(backbone, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    n = len(y_tr)
    per_pass = -(-n // batch_size)
    step, best = 0, 0.0
    while step < max_steps:
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            xb = augment_batch(x_tr[idx], augment, x_tr.shape[-1], gen)
            net.train()
            loss = F.cross_entropy(net((xb - mean) / std), y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % eval_every == 0:
                net.eval()
                with torch.no_grad():
                    acc = float((net(x_va).argmax(1) == y_va).float().mean())
                best = max(best, acc)
                if acc >= threshold:
                    return {"steps": float(step), "val_acc": acc, "passes": step / per_pass}
            if step >= max_steps:
                break
    return {"steps": float("nan"), "val_acc": best, "passes": float("nan")}


def variant_speeds(spec: VariantSpec, seed: int = 0, **kwargs) -> dict[str, float]:
    """Both attributes' :func:`attribute_speed` (rendered once), with the ratio slow / fast (NaN-safe: an attribute
    not learned within ``max_steps`` counts as ``max_steps``, so the ratio is then a lower bound)."""
    data = render_variant(spec)
    out: dict[str, float] = {}
    for attr in ("a", "b"):
        r = attribute_speed(spec, attr, seed=seed, data=data, **kwargs)
        out[f"steps_{attr}"] = r["steps"]
        out[f"val_acc_{attr}"] = r["val_acc"]
    cap = float(kwargs.get("max_steps", 600))
    sa = out["steps_a"] if out["steps_a"] == out["steps_a"] else cap
    sb = out["steps_b"] if out["steps_b"] == out["steps_b"] else cap
    out["ratio"] = max(sa, sb) / min(sa, sb)
    out["faster"] = "a" if sa < sb else "b" if sb < sa else "tie"
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description="steps until each shortcut alone is learned (label-using calibration)"
    )
    p.add_argument("--variants", required=True, help="comma-separated registered variant names")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--max-steps", type=int, default=600)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    for name in a.variants.split(","):
        spec = variant(name)
        for seed in (int(s) for s in a.seeds.split(",")):
            rec = {"variant": name, "seed": seed, **variant_speeds(spec, seed=seed, max_steps=a.max_steps)}
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
