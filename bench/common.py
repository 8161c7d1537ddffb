"""What the benchmark scripts share: a plain-text table and the results file."""

from __future__ import annotations

import json
import os
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def add_result_options(parser, quick_help: str) -> None:
    """``--quick`` (a smoke run, described by ``quick_help``), ``--output`` and ``--strict``: every benchmark's."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--output", type=Path, help="results file (default bench/results/latest.json; --quick: latest-quick.json)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")


def results_path(args) -> Path:
    """Where the results go: ``--output``, else latest.json (latest-quick.json for a smoke run)."""
    return args.output or RESULTS_DIR / ("latest-quick.json" if args.quick else "latest.json")


def render_table(header: tuple, body: list[tuple]) -> str:
    """An aligned text table: the first column left, the others right."""
    widths = [max(len(str(row[c])) for row in (header, *body)) for c in range(len(header))]

    def line(cells):
        return " | ".join([str(cells[0]).ljust(widths[0]), *(str(c).rjust(w) for c, w in zip(cells[1:], widths[1:]))])

    return "\n".join([line(header), "-+-".join("-" * w for w in widths), *(line(r) for r in body)])


def merge_results(path: Path, section: str, keys: dict, details: dict) -> None:
    """Merge our keys (top level) and details (under ``section``) into the JSON file, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data.update(keys)
    data[section] = details
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
