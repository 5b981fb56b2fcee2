"""Shared by the benchmark scripts: replace (or append) one script's section of benchmarks/RESULTS.md."""

from __future__ import annotations

import os
import re

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def write_section(heading_prefix: str, lines: list[str]) -> str:
    """Replaces the section whose heading starts with `## <heading_prefix>` (up to the next `## `) by
    `lines`, or appends it; writes atomically and returns the path."""
    text = open(RESULTS, encoding="utf-8").read() if os.path.exists(RESULTS) else "# Benchmarks\n\n"
    pattern = re.compile(rf"## {re.escape(heading_prefix)}.*?(?=\n## |\Z)", re.S)
    block = "\n".join(lines).rstrip("\n") + "\n"  # a blank line before the next section's heading
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    with open(RESULTS + ".tmp", "w", encoding="utf-8") as f:
        f.write(text.rstrip() + "\n")
    os.replace(RESULTS + ".tmp", RESULTS)
    print(f"wrote {RESULTS}")
    return RESULTS
