"""Build-time tool (needs torch + transformers): split ResNet-50 into its five stages and export each.

    python -m mlinfer.build.resnet_export --model microsoft/resnet-50 --out /opt/ml/model/resnet50

``--model`` is a Hugging Face id (fetched now, at build time) or a local folder, read with
``from_pretrained``. Written: ``model.onnx`` (whole network), ``stage0.onnx`` .. ``stage4.onnx`` and
``meta.json``. Each graph is checked against PyTorch on the same input before it is kept.

The partition follows ResNet-50's structure: stage 0 = stem (7x7 convolution, batch norm, ReLU, max
pool), stages 1-3 = the first three groups of bottleneck blocks, stage 4 = the last group + global
average pooling + the classifier. Blocks inside a group depend on each other in sequence.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
#: PIL's BICUBIC, what microsoft/resnet-50's image processor uses.
BICUBIC = 3


def stage_modules(model: Any) -> list[Any]:
    """The five partitions of a ``ResNetForImageClassification`` as modules sharing its parameters."""
    from torch import nn

    r = model.resnet
    return [
        r.embedder,
        r.encoder.stages[0],
        r.encoder.stages[1],
        r.encoder.stages[2],
        nn.Sequential(r.encoder.stages[3], r.pooler, model.classifier),
    ]


def whole_model(model: Any) -> Any:
    """``pixel_values -> logits`` as a module (the model itself returns an output object)."""
    from torch import nn

    class Logits(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: Any) -> Any:
            return self.model(pixel_values=pixel_values).logits

    return Logits().eval()


DEFAULT_PREPROCESSING = {
    "crop_size": 224, "resize_shortest": 256, "resample": BICUBIC, "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
}  # fmt: skip


def preprocessing(source: str | Path) -> dict[str, Any]:
    """Resize/crop/normalise settings from the model's image processor config, else ResNet-50's defaults."""
    proc: dict[str, Any] = {}
    path = Path(source) / "preprocessor_config.json"
    if path.exists():
        proc = json.loads(path.read_text())
    elif not Path(source).exists():  # a Hub id: the processor config comes with the weights
        try:
            from transformers import AutoImageProcessor

            proc = AutoImageProcessor.from_pretrained(str(source)).to_dict()
        except Exception:
            proc = {}
    if not proc:
        return dict(DEFAULT_PREPROCESSING)
    size = proc.get("size", {})
    crop = int(size.get("shortest_edge", size.get("height", 224))) if isinstance(size, dict) else 224
    return {
        "crop_size": crop,
        "resize_shortest": int(crop / (proc.get("crop_pct") or 0.875)),
        "resample": int(proc.get("resample", BICUBIC)),
        "mean": list(proc.get("image_mean", IMAGENET_MEAN)),
        "std": list(proc.get("image_std", IMAGENET_STD)),
    }


def export(source: str | Path, out_dir: Path, tolerance: float = 1e-3) -> dict[str, Any]:
    """Export the whole model and its five stages from ``source``; return the metadata written."""
    import onnxruntime as ort
    import torch
    from transformers import ResNetForImageClassification

    from mlinfer.build.onnx_export import export_onnx

    model = ResNetForImageClassification.from_pretrained(str(source)).eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = preprocessing(source)
    crop = meta["crop_size"]
    x = torch.randn(2, 3, crop, crop, generator=torch.Generator().manual_seed(0))
    graphs: list[tuple[str, Any, Any, bool]] = [("model.onnx", whole_model(model), x, False)]
    stages_meta = []
    h = x
    with torch.no_grad():
        for k, module in enumerate(stage_modules(model)):
            module.eval()
            graphs.append((f"stage{k}.onnx", module, h, k > 0))
            params = sum(p.numel() for p in module.parameters())
            nxt = module(h)
            stages_meta.append(
                {"stage": k, "in_channels": int(h.shape[1]), "out_shape": list(nxt.shape[1:]), "parameters": params}
            )
            h = nxt
    for file, module, example, spatial in graphs:
        path = out_dir / file
        axes = {0: "batch", 2: "height", 3: "width"} if spatial else {0: "batch"}
        out_axes = {0: "batch"} if file in ("model.onnx", "stage4.onnx") else {0: "batch", 2: "oh", 3: "ow"}
        input_name = "pixel_values" if not spatial else "hidden"
        export_onnx(
            module, (example,), path, input_names=[input_name], output_names=["output"],
            dynamic_axes={input_name: axes, "output": out_axes}, opset_version=17, do_constant_folding=True,
        )  # fmt: skip
        with torch.no_grad():
            want = module(example).numpy()
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(None, {input_name: example.numpy()})[0]
        err = float(np.abs(got - want).max() / (np.abs(want).max() + 1e-12))
        if err > tolerance:
            path.unlink()
            raise RuntimeError(f"{file}: ONNX output differs from PyTorch (relative {err:.2e} > {tolerance})")
    id2label = model.config.id2label
    meta.update(
        labels=[str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(model.config.num_labels)],
        stages=stages_meta,
        parameters=sum(p.numel() for p in model.parameters()),
        source=str(source),
    )
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def _calibrate(model: Any, generator: Any, n: int = 16) -> None:
    """Give a randomly initialised ResNet the statistics a trained one has, so that different images get
    different outputs (left as initialised, its output is nearly the same for every input): batch-norm
    running statistics from smooth random images, and a classifier over standardised pooled features."""
    import torch
    from torch.nn import functional

    size = 224
    noise = torch.randn(n, 3, size // 16, size // 16, generator=generator)
    images = functional.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False)
    images = images + 0.3 * torch.randn(n, 3, size, size, generator=generator)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():  # trained ResNets keep each residual branch small against the identity path
        for name, bn in model.named_modules():
            if name.endswith("layer.2.normalization"):
                bn.weight.fill_(0.25)
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average over the calibration pass
    model.train()
    with torch.no_grad():
        model(pixel_values=images)
        model.eval()
        for bn in norms:
            bn.momentum = 0.1
        features = model.resnet(pixel_values=images).pooler_output.flatten(1)
        mean, std = features.mean(0), features.std(0) + 1e-3
        linear = model.classifier[1]
        weight = torch.randn(linear.out_features, linear.in_features, generator=generator) / std
        weight /= linear.in_features**0.5
        linear.weight.copy_(weight)
        linear.bias.copy_(-weight @ mean)


def build_random(out_dir: Path, full_size: bool = True, num_labels: int = 1000, seed: int = 0) -> Path:
    """Save a ResNet of ResNet-50's shape (or a tiny one) with random weights, for offline builds and
    tests; real builds use ``microsoft/resnet-50``. See :func:`_calibrate` for the statistics it gets."""
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(seed)
    if full_size:
        config = ResNetConfig(num_labels=num_labels)  # the defaults are ResNet-50's
    else:
        config = ResNetConfig(
            embedding_size=8, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 2, 1], num_labels=num_labels
        )
    config.id2label = {i: f"class_{i}" for i in range(num_labels)}
    config.label2id = {v: k for k, v in config.id2label.items()}
    model = ResNetForImageClassification(config)
    _calibrate(model, torch.Generator().manual_seed(seed))
    model.save_pretrained(out_dir)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="Hugging Face id or local folder (from_pretrained)")
    parser.add_argument("--random", action="store_true", help="a full-size ResNet-50 with random weights (offline)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--int8-calibration", type=Path, help="also write int8 graphs calibrated on these photos "
                        "(kept only if the accuracy guard of mlinfer.build.resnet_quantize passes)")  # fmt: skip
    args = parser.parse_args(argv)
    source = args.model
    if args.random:
        source = build_random(args.out.parent / f".{args.out.name}-source")
    if not source:
        parser.error("give --model or --random")
    meta = export(source, args.out)
    print(json.dumps({k: meta[k] for k in ("parameters", "stages", "crop_size")}, indent=1))
    if args.int8_calibration:
        from mlinfer.build import resnet_quantize

        return resnet_quantize.main(["--model-dir", str(args.out), "--images", str(args.int8_calibration)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
