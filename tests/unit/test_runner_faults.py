"""The local runner when things break, with real kills (signals, the kernel's memory limit, timeouts), and
interrupted runs resumed. Every item is accounted for, and the summary and exit code say what happened."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mlinfer.bench.limits import Sandbox
from mlinfer.local.runner import RunConfig, run_local
from mlinfer.workflow.retries import BATCH_RETRIES

ROOT = Path(__file__).resolve().parents[2]
needs_cgroup = pytest.mark.skipif(Sandbox.probe(1024) != (True, True), reason="needs writable cgroups (root, Linux)")


@pytest.fixture()
def texts_file(tmp_path, emotion_rows) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}) + "\n" for r in emotion_rows[:600]))
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def worker_pids(log_dir: Path) -> list[int]:
    return [int(p.stem.split("-")[1]) for p in log_dir.glob("worker-*.log")]


def kill_first_worker_after_a_batch(log_dir: Path, sig: int, killed: list[int]) -> None:
    """Wait until a worker has served a batch, then send it ``sig`` (a real signal, not a mock)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not killed:
        for log in log_dir.glob("worker-*.log") if log_dir.exists() else []:
            if "REPORT RequestId" in log.read_text(errors="replace"):
                pid = int(log.stem.split("-")[1])
                os.kill(pid, sig)
                killed.append(pid)
                return
        time.sleep(0.02)


def test_the_asl_retries_what_the_local_runner_retries():
    asl = json.loads((ROOT / "statemachine" / "batch_inference.asl.json").read_text())
    infer = asl["States"]["RunBatches"]["ItemProcessor"]["States"]["InferBatch"]
    for state in (infer, asl["States"]["RunMonolithic"]):
        rules = {e: r["MaxAttempts"] for r in state["Retry"] for e in r["ErrorEquals"]}
        assert rules == BATCH_RETRIES


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_a_crashed_environment_is_replaced_and_its_batch_retried(texts_file, model_root, tmp_path, sig):
    out = tmp_path / "out"
    cfg = RunConfig("logreg", texts_file, out, batch_size=50, concurrency=1, model_dir=model_root, progress=False)
    killed: list[int] = []
    killer = threading.Thread(target=kill_first_worker_after_a_batch, args=(out / "logs", sig, killed))
    killer.start()
    result = run_local(cfg)
    killer.join()
    assert killed, "no worker was killed"
    s = result.summary
    assert s["items"] == 600 and s["results"] == 600 and s["outcome"] == "complete"  # the retry succeeded
    crashed = [r for r in result.invocations if r.get("error")]
    assert len(crashed) == 1 and crashed[0]["error"]["errorType"] == "Runtime.ExitError"
    assert signal.Signals(sig).name in crashed[0]["error"]["errorMessage"]
    assert s["retries"] == 1 and s["cold_starts"] == 2  # the replacement environment started cold


@needs_cgroup
def test_a_batch_over_the_memory_limit_becomes_error_lines(texts_file, model_root, tmp_path, capsys):
    from mlinfer.cli import main

    out = tmp_path / "oom"
    path = tmp_path / "in.jsonl"  # one batch of 30,000 texts: over 128 MB whatever data trained the model
    path.write_text("".join(json.dumps({**r, "id": f"{k}-{r['id']}"}) + "\n" for k in range(50)
                            for r in lines(texts_file)))  # fmt: skip
    code = main(["run", "--model", "random_forest", "--input", str(path), "--output", str(out),
                 "--memory", "128", "--batch-size", "30000", "--model-dir", str(model_root), "--quiet"])  # fmt: skip
    rows = lines(out / "results.jsonl")
    assert code == 1 and len(rows) == 30_000
    assert {r["error"]["type"] for r in rows} == {"BatchFailed"}
    assert "Runtime.OutOfMemory" in rows[0]["error"]["message"]
    assert [r["id"] for r in rows] == [r["id"] for r in lines(path)]  # ids read back from the input
    assert "FAILED" in capsys.readouterr().out


def test_a_batch_that_times_out_becomes_error_lines_and_the_run_is_partial(texts_file, model_root, tmp_path, capsys):
    from mlinfer.cli import main

    rows = lines(texts_file)
    path = tmp_path / "in.jsonl"  # batch 0: 30,000 texts (about 3 s of work), batch 1: 20 texts
    path.write_text("".join(json.dumps({**r, "id": f"{k}-{r['id']}"}) + "\n" for k in range(50) for r in rows)
                    + "".join(json.dumps(r) + "\n" for r in rows[:20]))  # fmt: skip
    code = main(["run", "--model", "random_forest", "--input", str(path), "--output", str(tmp_path / "out"),
                 "--batch-size", "30000", "--concurrency", "1", "--timeout", "1", "--model-dir", str(model_root),
                 "--quiet", "--json"])  # fmt: skip
    s = json.loads(capsys.readouterr().out)
    assert code == 3 and s["outcome"] == "partial"  # the run completed; some items are errors
    assert s["items"] == 30020 and s["errors"] == 30000 and s["results"] == 20 and s["failed_batch_indexes"] == [0]
    first = lines(tmp_path / "out" / "results.jsonl")[0]
    assert (
        "Sandbox.Timedout" in first["error"]["message"] and "timed out after 1.00 seconds" in first["error"]["message"]
    )
    assert s["retries"] == 0  # a timeout would recur: not retried, as in the workflow


def test_interrupted_run_resumes_to_identical_results(texts_file, model_root, tmp_path):
    base = [sys.executable, "-m", "mlinfer.cli", "run", "--model", "logreg", "--input", str(texts_file),
            "--batch-size", "20", "--concurrency", "1", "--model-dir", str(model_root), "--quiet"]  # fmt: skip
    whole = subprocess.run([*base, "--output", str(tmp_path / "whole")], capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr

    out = tmp_path / "cut"
    proc = subprocess.Popen([*base, "--output", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill -9 once some, but not all, batches are done
        done = list((out / "batches").glob("*.meta.json")) if (out / "batches").exists() else []
        if len(done) >= 5:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for pid in worker_pids(out / "logs"):  # its orphaned workers end when their pipe closes
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.05)
    finished = {int(p.name.split(".")[0]) for p in (out / "batches").glob("*.meta.json")}
    assert 5 <= len(finished) < 30 and not (out / "results.jsonl").exists()

    again = subprocess.run([sys.executable, "-m", "mlinfer.cli", "run", "--resume", str(out), "--quiet", "--json"],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert (out / "results.jsonl").read_bytes() == (tmp_path / "whole" / "results.jsonl").read_bytes()
    served = [r["batch"] for r in lines(out / "invocations.jsonl")]
    assert len(served) == len(set(served))  # no finished batch was run twice
    # A kill between a batch's files and its invocation record loses that record (the runner died
    # holding it), never the batch: anything unlogged was finished before the resume.
    unlogged = set(range(30)) - set(served)
    assert unlogged <= finished and len(unlogged) <= 1
    assert json.loads(again.stdout)["items"] == 600


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(texts_file, model_root, tmp_path):
    out = tmp_path / "int"
    cmd = [sys.executable, "-m", "mlinfer.cli", "run", "--model", "logreg", "--input", str(texts_file),
           "--output", str(out), "--batch-size", "10", "--concurrency", "1",
           "--model-dir", str(model_root)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((out / "batches").glob("*.meta.json")) if out.exists() else []) < 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"mlinfer run --resume {out}" in err and "Traceback" not in err
    again = subprocess.run([sys.executable, "-m", "mlinfer.cli", "run", "--resume", str(out), "--quiet"],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0 and "600 results" in again.stdout


@needs_cgroup
def test_durations_follow_the_cpu_share_of_the_memory_size(texts_file, model_root, tmp_path):
    """The same job at 512 MB (0.29 vCPU) and 3,008 MB (1.7 vCPU, one core here at most per environment)."""
    rows = lines(texts_file)
    work = tmp_path / "work.jsonl"
    work.write_text("".join(json.dumps({**r, "id": f"{k}-{r['id']}"}) + "\n" for k in range(4) for r in rows))
    fastest = {}  # the fastest warm batch: other load on this machine only ever lengthens a batch
    for memory in (512, 3008):
        cfg = RunConfig("random_forest", work, tmp_path / f"m{memory}", batch_size=600, concurrency=1,
                        memory_mb=memory, model_dir=model_root, progress=False)  # fmt: skip
        result = run_local(cfg)
        assert result.summary["limits"] == "cgroup"
        fastest[memory] = min(r["duration_ms"] for r in result.invocations if r.get("init_ms") is None)
    ratio = fastest[512] / fastest[3008]
    # 3,008 MB gives 1.7 vCPU; an environment sees one core of this machine's two when it uses one thread,
    # so the expected ratio is 1 / 0.289 = 3.5 (and at most 5.9 with both cores in use); a batch's reads and
    # writes are not all CPU time (with only the shipped sample, 2.1 was seen); without limits it would be ~1.
    assert 1.8 < ratio < 7, fastest
