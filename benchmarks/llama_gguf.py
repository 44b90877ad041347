"""A Q4_0 GGUF of the benchmark's TinyLlama-1.1B folder, for llama_bench.py's llama.cpp row (optional).

    .venv/bin/pip install llama-cpp-python==0.3.36          # compiles llama.cpp (about 10 minutes on 2 cores)
    .venv/bin/pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/lcpp-src
    tar xzf /tmp/lcpp-src/llama_cpp_python-0.3.36.tar.gz -C /tmp/lcpp-src
    .venv/bin/pip install sentencepiece
    .venv/bin/python benchmarks/llama_gguf.py \
        --llama-cpp /tmp/lcpp-src/llama_cpp_python-0.3.36/vendor/llama.cpp
    .venv/bin/python benchmarks/llama_bench.py --gguf /tmp/mlinfer-bench/llama/tinyllama-1.1b-q4_0.gguf

llama.cpp's own ``convert_hf_to_gguf.py`` (from the package's source) writes f16; its quantiser (through
``llama_cpp.llama_model_quantize``) makes Q4_0. The benchmark's tokenizer is a byte-level BPE learnt here,
which the converter does not know by hash; it is declared GPT-2's pre-tokenizer (the same byte-level
splitting), which matters to token ids only, not to speed.
"""

from __future__ import annotations

import argparse
import ctypes
import subprocess
import sys
from pathlib import Path

SHIM = """
import runpy, sys
src = sys.argv.pop(1)
sys.path[:0] = [src, src + "/gguf-py"]
from conversion import base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-2"
sys.argv[0] = src + "/convert_hf_to_gguf.py"
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llama-cpp", type=Path, required=True, help="llama.cpp source (convert_hf_to_gguf.py)")
    parser.add_argument("--model", type=Path, default=Path("/tmp/mlinfer-bench/llama/tinyllama-1.1b-random"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/mlinfer-bench/llama/tinyllama-1.1b-q4_0.gguf"))
    args = parser.parse_args()
    import llama_cpp

    f16 = args.out.with_name(args.out.stem + "-f16.gguf")
    cmd = [sys.executable, "-c", SHIM, str(args.llama_cpp), str(args.model), "--outtype", "f16", "--outfile", str(f16)]
    subprocess.run(cmd, check=True)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
    if llama_cpp.llama_model_quantize(str(f16).encode(), str(args.out).encode(), ctypes.byref(params)) != 0:
        raise SystemExit("llama_model_quantize failed")
    f16.unlink()
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.0f} MB (Q4_0)")


if __name__ == "__main__":
    main()
