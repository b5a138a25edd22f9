"""The README and the code cite the code and the papers, never documents that are not in the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Names of the project's private planning documents and their section labels; none of them ships with the code.
FORBIDDEN = re.compile(r"\.\./shared|_spec\.md|install\.md|ecosystem\.md|spec §|seed 003|seed paper|tasks_spec")


def tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    keep = (".py", ".md", ".yaml", ".yml", ".toml", ".csv", ".cfg", ".txt", ".sh")
    return [ROOT / p for p in out if p.endswith(keep) or p in ("Makefile", ".ci/run")]


def test_no_references_to_documents_outside_the_repository():
    hits = []
    for path in tracked_text_files():
        if path.name == "test_docs.py" or not path.is_file():
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits[:20])
