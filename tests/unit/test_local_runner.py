"""The local runner end to end: one output line per input line, in order, with a full summary."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlinfer.cli import main
from mlinfer.local.runner import RunConfig, run_local


@pytest.fixture()
def input_file(tmp_path: Path, emotion_rows: list[dict]) -> Path:
    rows = [json.dumps({"id": r["id"], "text": r["text"]}) for r in emotion_rows[-230:]]
    bad = [
        "this is not json",
        json.dumps({"text": "no id here"}),
        json.dumps(["a", "list"]),
        json.dumps({"id": "empty", "text": "  "}),
        json.dumps({"id": "wrong-dim", "features": [0.1, 0.2]}),
        "",
    ]
    lines = rows[:100] + bad[:3] + rows[100:200] + bad[3:] + rows[200:]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def read_lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_parallel_run_accounts_for_every_line(input_file, model_root, tmp_path):
    cfg = RunConfig(
        "logreg", input_file, tmp_path / "out", batch_size=40, concurrency=2, model_dir=model_root, progress=False
    )
    result = run_local(cfg)
    out = read_lines(result.results_path)
    src = input_file.read_text().splitlines()
    assert len(out) == len(src) == 236
    for line, res in zip(src, out, strict=True):  # order preserved, ids preserved
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and "id" in obj:
            assert res["id"] == obj["id"]
        assert ("result" in res) != ("error" in res)
    s = result.summary
    assert s["items"] == 236 and s["results"] + s["errors"] == 236
    assert s["error_types"] == {
        "InvalidJson": 2,
        "MissingId": 1,
        "InvalidItem": 1,
        "EmptyText": 1,
        "WrongFeatureCount": 1,
    }
    assert s["batches"] == 6 and s["failed_batches"] == 0
    assert s["cold_starts"] >= 1 and s["peak_memory_mb"] > 0
    assert s["batch_latency_ms"]["p50"] > 0 and s["batch_latency_ms"]["p95"] >= s["batch_latency_ms"]["p50"]
    cost = s["cost"]
    assert cost["lambda"]["invocations"] == 6 and cost["lambda"]["prices"]["region"] == "us-east-1"
    parts = cost["lambda"]["total"], cost["stepfunctions"]["total"], cost["s3"]["usd"], cost["logs"]["usd"]
    assert cost["total_usd"] == pytest.approx(sum(parts)) and all(p > 0 for p in parts)
    assert cost["logs"]["bytes"] == sum(p.stat().st_size for p in (result.results_path.parent / "logs").glob("*.log"))
    assert cost["stepfunctions"]["express_requests"] == 6  # one Express child per batch
    assert "projection" in cost["label"]
    assert s["status"] == "SUCCEEDED" and s["failed_batches"] == 0
    assert sorted(p.name for p in (tmp_path / "out" / "batches").iterdir())[:2] == ["000000.jsonl", "000000.meta.json"]
    assert json.loads(result.summary_path.read_text()) == s
    reports = [
        x
        for f in (tmp_path / "out" / "logs").glob("*.log")
        for x in f.read_text().splitlines()
        if x.startswith("REPORT")
    ]
    assert len(reports) == 6 and sum("Init Duration" in r for r in reports) == s["cold_starts"]


def test_monolithic_gives_the_same_results(input_file, model_root, tmp_path):
    par = run_local(
        RunConfig(
            "kmeans", input_file, tmp_path / "p", batch_size=50, concurrency=2, model_dir=model_root, progress=False
        )
    )
    mono = run_local(
        RunConfig(
            "kmeans", input_file, tmp_path / "m", batch_size=50, mode="monolithic", model_dir=model_root, progress=False
        )
    )
    assert read_lines(par.results_path) == read_lines(mono.results_path)
    assert mono.summary["cold_starts"] == 1 and mono.summary["config"]["concurrency"] == 1
    assert mono.summary["cost"]["lambda"]["invocations"] == 1  # one invocation took every batch
    assert {k: v for k, v in mono.summary.items() if k in ("items", "results", "errors", "error_types", "batches")} == {
        k: v for k, v in par.summary.items() if k in ("items", "results", "errors", "error_types", "batches")
    }


def test_cli_run_prints_summary(input_file, model_root, tmp_path, capsys):
    code = main(["run", "--model", "svm", "--input", str(input_file), "--output", str(tmp_path / "cli"),
                 "--batch-size", "100", "--concurrency", "1", "--memory", "1769", "--arch", "arm64",
                 "--model-dir", str(model_root), "--quiet"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 3  # completed, with some items in error
    assert "236: 230 results, 6 errors" in out and "Step Functions $" in out and "1769 MB arm64" in out


def test_cli_errors_are_clear(input_file, model_root, tmp_path, capsys):
    assert main(["run", "--model", "svm", "--input", str(input_file), "--output", str(tmp_path / "x"),
                 "--batch-size", "0", "--quiet"]) == 2  # fmt: skip
    assert "batch size must be at least 1" in capsys.readouterr().err
    assert main(["run", "--model", "svm", "--input", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "x"),
                 "--model-dir", str(tmp_path), "--quiet"]) == 2  # fmt: skip
    assert "no trained model" in capsys.readouterr().err
    assert main(["run", "--model", "svm", "--input", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "x"),
                 "--model-dir", str(model_root), "--quiet"]) == 2  # fmt: skip
    assert "input file not found" in capsys.readouterr().err


def test_every_missing_model_advice_parses_and_the_training_one_works(input_file, tmp_path, capsys):
    """Each model's advice is a valid mlinfer command; the trainable ones' run as written, then `run` works."""
    import shlex

    from mlinfer.cli import build_parser
    from mlinfer.models.registry import MODELS, artifact_path, missing_model_advice

    root = tmp_path / "models"
    for name in MODELS:
        command = missing_model_advice(name, root).split("make it first: ")[1].split("   (or")[0]
        argv = shlex.split(re.sub(r"<[^>]*>", "DIR", command))
        args = build_parser().parse_args(argv[1:])
        assert name in (getattr(args, "models", None) or [getattr(args, "model", None)])
        assert Path(args.out) in (root, artifact_path(name, root))
    argv = shlex.split(missing_model_advice("svm", root).split("make it first: ")[1])
    assert main(argv[1:]) == 0
    code = main(["run", "--model", "svm", "--input", str(input_file), "--output", str(tmp_path / "out"),
                 "--model-dir", str(root), "--quiet"])  # fmt: skip
    assert code in (0, 3) and "results" in capsys.readouterr().out
