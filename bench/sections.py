"""Rewriting one benchmark's own section of BENCHMARKS.md, between its start and end markers."""

from __future__ import annotations

import re
from pathlib import Path


def rewrite(path: Path, markers: tuple[str, str], new_section: str, *, first: bool = False
            ) -> None:
    """Replace the text between ``markers`` with ``new_section`` (which carries the markers).

    Without the markers in the file the section is added: before the first ``## `` heading when
    ``first`` (latest first), else at the end. Everything outside the markers is left as it is.
    """
    start_marker, end_marker = markers
    text = path.read_text(encoding="utf-8")
    start, end = text.find(start_marker), text.find(end_marker)
    if 0 <= start < end:
        text = text[:start] + new_section + text[end + len(end_marker):]
    elif first:
        heading = re.search(r"^## ", text, re.M)
        at = heading.start() if heading else len(text)
        text = text[:at] + new_section + "\n\n" + text[at:]
    else:
        text = text.rstrip("\n") + "\n\n" + new_section + "\n"
    path.write_text(text, encoding="utf-8")
