"""Build-time tool: static int8 quantisation of the ResNet graphs, kept only if an accuracy guard passes.

    python -m mlinfer.build.resnet_quantize --model-dir /opt/ml/model/resnet50 --images events/images

Each graph (``model.onnx`` and ``stage0.onnx`` .. ``stage4.onnx``) becomes ``*.int8.onnx``: ONNX Runtime's
static quantisation in QDQ form, int8 weights per output channel, uint8 activations whose ranges are
calibrated on real photos (each stage on the fp32 activations the stage before it produces for them).

The guard. A network with random weights says nothing about int8 error (its near-ties flip), and no
trained ResNet can be fetched offline, so the guard trains one here: a small ResNet (transformers'
``ResNetForImageClassification``, the layout the functions serve) on scikit-learn's bundled handwritten
digits, upsampled to RGB images; exports it with :func:`mlinfer.build.resnet_export.export`, quantises
it with :func:`quantize_model_dir` (the code the functions' graphs go through) and requires at least
:data:`MIN_TOP1_AGREEMENT` of held-out top-1 answers to agree with fp32, for the whole graph and for the
five int8 stages chained. If it fails, no int8 graph is written and the functions serve fp32.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

MIN_TOP1_AGREEMENT = 0.99
GRAPHS = ["model.onnx", *[f"stage{k}.onnx" for k in range(5)]]


class QuantizationGuardError(RuntimeError):
    """The int8 graphs disagree with fp32 too often to be served."""


def int8_name(graph: str) -> str:
    return graph.replace(".onnx", ".int8.onnx")


def _session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def outputs(graph: Path, batches: Iterable[np.ndarray]) -> list[np.ndarray]:
    """The graph's output for each batch (what the next stage is calibrated on, or compared)."""
    sess = _session(graph)
    name = sess.get_inputs()[0].name
    return [sess.run(None, {name: b})[0] for b in batches]


def run(graph: Path, batches: Iterable[np.ndarray]) -> np.ndarray:
    """The graph's outputs for all batches, concatenated."""
    return np.concatenate(outputs(graph, batches))


def quantize_graph(src: Path, dst: Path, calibration: list[np.ndarray]) -> None:
    """Static QDQ quantisation of ``src`` into ``dst``; activation ranges from the ``calibration`` batches."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            self.batches = iter({name: b} for b in calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    pre = dst.with_name(dst.name + ".pre.onnx")
    try:
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        name = _session(pre).get_inputs()[0].name
        quantize_static(
            str(pre), str(dst), Reader(name), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
        )  # fmt: skip
    finally:
        pre.unlink(missing_ok=True)


def quantize_model_dir(model_dir: Path, images: np.ndarray, batch: int = 4) -> dict[str, Any]:
    """Write ``*.int8.onnx`` beside each fp32 graph of ``model_dir``, calibrated on ``images``
    (``[N, 3, H, W]``, preprocessed as the model expects); each stage sees what the fp32 stage before it
    makes of them. Returns what was done (for ``meta.json``)."""
    t0 = time.perf_counter()
    batches = [images[i : i + batch] for i in range(0, len(images), batch)]
    quantize_graph(model_dir / "model.onnx", model_dir / int8_name("model.onnx"), batches)
    h = batches
    for k in range(5):
        graph = f"stage{k}.onnx"
        quantize_graph(model_dir / graph, model_dir / int8_name(graph), h)
        h = outputs(model_dir / graph, h)
    return {"format": "QDQ, int8 weights per channel, uint8 activations (MinMax)", "calibration_images": len(images),
            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip


def top_agreement(want: np.ndarray, got: np.ndarray, k: int = 5) -> dict[str, float]:
    """How often int8 answers as fp32: top-1 equal, and the mean overlap of the top-k sets."""
    top1 = float(np.mean(want.argmax(1) == got.argmax(1)))
    a, b = np.argsort(-want, 1)[:, :k], np.argsort(-got, 1)[:, :k]
    overlap = float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b, strict=True)]))
    return {"top1": round(top1, 4), f"top{k}_overlap": round(overlap, 4)}


def compare(model_dir: Path, images: np.ndarray, batch: int = 8, labels: np.ndarray | None = None) -> dict[str, Any]:
    """fp32 against int8 on ``images``: the whole graph, and the five stages chained (and, given the
    true ``labels``, the accuracy of each)."""
    batches = [images[i : i + batch] for i in range(0, len(images), batch)]
    want = run(model_dir / "model.onnx", batches)
    whole = run(model_dir / int8_name("model.onnx"), batches)
    h: list[np.ndarray] = batches
    for k in range(5):
        h = outputs(model_dir / int8_name(f"stage{k}.onnx"), h)
    k, chained = min(5, want.shape[1]), np.concatenate(h)
    out: dict[str, Any] = {"whole": top_agreement(want, whole, k), "stages": top_agreement(want, chained, k),
                           "items": len(images)}  # fmt: skip
    if labels is not None:
        out["accuracy"] = {name: round(float(np.mean(v.argmax(1) == labels)), 4)
                           for name, v in (("fp32", want), ("int8", whole), ("int8_stages", chained))}  # fmt: skip
    return out


# -- the guard: a trained network -----------------------------------------------------------------------
DIGITS_SIZE = 64


def digits_images(size: int = DIGITS_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten digits (8x8, bundled with the package) as normalised RGB
    ``[N, 3, size, size]`` float32 images, and their labels."""
    import torch
    from sklearn.datasets import load_digits
    from torch.nn import functional

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x - 0.5) / 0.5
    return x.repeat(1, 3, 1, 1).numpy(), digits.target.astype(np.int64)


def train_digits_resnet(out: Path, epochs: int = 12, seed: int = 0) -> dict[str, Any]:
    """Train a small ResNet on the digits and save it with ``save_pretrained`` (and an image processor
    config, so that the export uses its input size). Returns its held-out accuracy."""
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(seed)
    x, y = digits_images()
    order = np.random.default_rng(seed).permutation(len(x))
    train, test = order[:1400], order[1400:]
    config = ResNetConfig(embedding_size=16, hidden_sizes=[16, 32, 64, 96], depths=[1, 1, 1, 1], num_labels=10,
                          id2label={i: str(i) for i in range(10)}, label2id={str(i): i for i in range(10)})  # fmt: skip
    model = ResNetForImageClassification(config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    steps = epochs * -(-len(train) // 64)
    # A decaying rate and a fresh order each epoch: a network that has settled (not one caught mid-step, whose
    # near-tied answers any rounding flips, and whose accuracy depends on the CPU's float order).
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.2)
    xt, yt = torch.tensor(x), torch.tensor(y)
    rng = np.random.default_rng(seed + 1)
    model.train()
    for _ in range(epochs):
        shuffled = rng.permutation(train)
        for i in range(0, len(shuffled), 64):
            idx = torch.tensor(shuffled[i : i + 64])
            loss = model(pixel_values=xt[idx], labels=yt[idx]).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(pixel_values=xt[test]).logits.argmax(1) == yt[test]).float().mean())
    model.save_pretrained(out)
    processor = {"size": {"shortest_edge": DIGITS_SIZE}, "crop_pct": 1.0, "image_mean": [0.5] * 3,
                 "image_std": [0.5] * 3, "resample": 2}  # fmt: skip
    (out / "preprocessor_config.json").write_text(json.dumps(processor))
    return {"accuracy": round(accuracy, 4), "train": len(train), "test": len(test)}


def guard(work: Path, quantize: Callable[[Path, np.ndarray], Any] = quantize_model_dir) -> dict[str, Any]:
    """Train, export and quantise the digits ResNet through the real code; raise
    :class:`QuantizationGuardError` unless int8 agrees with fp32 on >= 99 % of held-out top-1 answers."""
    from mlinfer.build.resnet_export import export

    x, y = digits_images()
    order = np.random.default_rng(0).permutation(len(x))
    trained_file = work / "trained.json"
    if not trained_file.exists():  # train and export once per work folder
        trained_file.parent.mkdir(parents=True, exist_ok=True)
        trained = train_digits_resnet(work / "source")
        export(work / "source", work / "fp32")
        trained_file.write_text(json.dumps(trained))
    trained = json.loads(trained_file.read_text())
    quantize(work / "fp32", x[order[:32]])
    held_out = order[1400:]
    result = {"network": trained, **compare(work / "fp32", x[held_out], labels=y[held_out])}
    worst = min(result["whole"]["top1"], result["stages"]["top1"])
    result["passed"] = worst >= MIN_TOP1_AGREEMENT
    if not result["passed"]:
        raise QuantizationGuardError(
            f"int8 agrees with fp32 on {worst:.1%} of held-out top-1 answers (< {MIN_TOP1_AGREEMENT:.0%}): {result}"
        )
    return result


def load_images(folder: Path, meta: dict[str, Any]) -> np.ndarray:
    """The photos in ``folder``, preprocessed as the model expects, each also mirrored (twice the
    calibration data from the few photos that ship with the project)."""
    from mlinfer.models.resnet import preprocess

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
    arrays = [preprocess(p.read_bytes(), meta) for p in files]
    return np.stack([*arrays, *(a[:, :, ::-1] for a in arrays)]).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="an exported ResNet (resnet_export)")
    parser.add_argument("--images", type=Path, required=True, help="a folder of photos to calibrate on")
    parser.add_argument("--work", type=Path, default=Path("/tmp/resnet-int8-guard"))
    args = parser.parse_args(argv)
    meta_path = args.model_dir / "meta.json"
    meta = json.loads(meta_path.read_text())
    try:
        checked = guard(args.work)
    except QuantizationGuardError as exc:
        print(f"mlinfer: int8 not kept, the functions serve fp32: {exc}")
        return 0
    done = quantize_model_dir(args.model_dir, load_images(args.images, meta))
    meta["int8"] = {**done, "guard": checked}
    meta_path.write_text(json.dumps(meta, indent=1))
    print(json.dumps(meta["int8"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
