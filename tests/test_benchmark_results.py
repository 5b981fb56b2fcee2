"""benchmarks/_results.write_section: each script replaces its own section of RESULTS.md and nothing else."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import _results  # noqa: E402

DOC = """# Benchmarks

Preamble.

## autoprm: batched sampling vs a loop

old sampling table

## autoprm SFT step: thread pool vs single (3 seeds)

SFT table
"""


def _write(tmp_path, text=DOC):
    path = tmp_path / "RESULTS.md"
    path.write_text(text)
    return str(path)


def test_titles_are_whole_heading_prefixes():
    assert _results.section_title("## autoprm SFT step: XLA's CPU thread pool (paper)") == "autoprm SFT step"
    assert _results.section_title("## autoprm: batched KV-cached sampling") == "autoprm"
    assert _results.section_title("## ltb_icl training step (quick preset)") == "ltb_icl training step"


def test_a_title_that_prefixes_another_replaces_only_its_own_section(tmp_path):
    path = _write(tmp_path)
    _results.write_section("autoprm", ["## autoprm: batched sampling, new", "", "new sampling table"], path=path)
    text = open(path).read()
    assert "new sampling table" in text and "old sampling table" not in text
    assert "## autoprm SFT step: thread pool vs single (3 seeds)\n\nSFT table\n" in text
    assert text.index("new sampling table") < text.index("## autoprm SFT step")  # kept in place
    assert "\n\n## autoprm SFT step" in text and text.startswith("# Benchmarks\n\nPreamble.\n")


def test_rewriting_every_section_with_its_own_lines_changes_nothing(tmp_path):
    path = _write(tmp_path)
    for title, lines in (("autoprm", ["## autoprm: batched sampling vs a loop", "", "old sampling table"]),
                         ("autoprm SFT step", ["## autoprm SFT step: thread pool vs single (3 seeds)", "",
                                               "SFT table"])):
        _results.write_section(title, lines, path=path)
    assert open(path).read() == DOC


def test_a_new_title_is_appended(tmp_path):
    path = _write(tmp_path)
    _results.write_section("autoprm SFT", ["## autoprm SFT (another)", "x"], path=path)
    text = open(path).read()
    assert text.startswith(DOC.rstrip()) and text.endswith("\n\n## autoprm SFT (another)\nx\n")


def test_a_heading_that_does_not_carry_the_title_is_refused(tmp_path):
    path = _write(tmp_path)
    with pytest.raises(ValueError, match="titled 'autoprm'"):
        _results.write_section("autoprm", ["## autoprm SFT step: x", "y"], path=path)
    assert open(path).read() == DOC
