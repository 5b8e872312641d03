"""mkdocs hook: the pages made from other files at each build

- ``reference/configuration.md``: the configuration reference, made from the
  code (:mod:`splade.reference`), so that it cannot drift from
  ``splade/configuration.py``;
- ``benchmarks.md``: ``BENCHMARKS.md`` (written by the scripts of ``bench/``,
  at the root of the repository), with the files it links to (its plots).
"""

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).parents[1]
REFERENCE = "reference/configuration.md"
BENCHMARKS = ROOT / "BENCHMARKS.md"


def on_files(files, config):
    from splade.reference import markdown

    files.append(File.generated(config, REFERENCE, content=markdown()))

    text = BENCHMARKS.read_text(encoding="utf-8")
    files.append(File.generated(config, "benchmarks.md", content=text))
    for target in sorted(set(re.findall(r"\]\(([^)#\s]+)\)", text))):
        if "://" not in target and (ROOT / target).is_file():
            files.append(
                File(
                    target,
                    src_dir=str(ROOT),
                    dest_dir=config["site_dir"],
                    use_directory_urls=config["use_directory_urls"],
                )
            )
    return files
