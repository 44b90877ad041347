"""Data shipped with the package: a small labelled sample it writes itself (see :mod:`.sample`)."""

from pathlib import Path

SAMPLE_PATH = Path(__file__).with_name("sample.jsonl")
