"""What the benchmark scripts share: a plain-text table and the results file."""

from __future__ import annotations

import json
import os
from pathlib import Path


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
