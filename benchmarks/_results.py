"""Shared by the benchmark scripts: replace (or append) one script's section of benchmarks/RESULTS.md."""

from __future__ import annotations

import os
import re

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")


def section_title(heading: str) -> str:
    """A section's title: its `## ` heading up to the first ": " or " (" ("autoprm SFT step: XLA's ..." →
    "autoprm SFT step"). Sections are matched by whole titles, so "autoprm" never matches "autoprm SFT step"."""
    heading = heading.removeprefix("## ").strip()
    return re.split(r": | \(", heading, maxsplit=1)[0].strip()


def write_section(title: str, lines: list[str], path: str = RESULTS) -> str:
    """Replaces the section whose heading's `section_title` is `title` (up to the next `## `) by `lines`, whose
    first line must be that section's heading, or appends it; writes atomically and returns the path."""
    if not lines or not lines[0].startswith("## ") or section_title(lines[0]) != title:
        raise ValueError(f"write_section: the first line must be a '## ' heading titled {title!r}, "
                         f"got {lines[0] if lines else None!r}")
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmarks\n\n"
    block = "\n".join(lines).rstrip("\n") + "\n"  # a blank line before the next section's heading
    parts = re.split(r"(?m)^(?=## )", text)  # the preamble, then one part per section
    hits = [i for i, part in enumerate(parts) if part.startswith("## ") and
            section_title(part.split("\n", 1)[0]) == title]
    if len(hits) > 1:
        raise ValueError(f"write_section: {path} has {len(hits)} sections titled {title!r}; merge them by hand")
    if hits:
        parts[hits[0]] = block + ("\n" if hits[0] < len(parts) - 1 else "")
        text = "".join(parts)
    else:
        text = text.rstrip() + "\n\n" + block
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text.rstrip() + "\n")
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")
    return path
