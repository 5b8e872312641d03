"""README.md stays a first page (the rest is in docs/, built by MkDocs):
at most 200 lines, the two set-up commands that CI runs where `.ci/run`
finds them, and links that lead somewhere"""

import re
import subprocess

from conftest import ROOT

README = ROOT / "README.md"


def test_the_readme_is_a_first_page():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 200


def test_ci_finds_the_two_set_up_commands():
    """The awk line of .ci/run, run on the README"""
    run = (ROOT / ".ci" / "run").read_text()
    (awk,) = re.findall(r"awk '([^']+)' README.md", run)
    commands = subprocess.run(
        ["awk", awk, str(README)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(commands) == 2
    assert commands[0].endswith("experimaestro run-experiment splade/debug.yaml")
    assert "python -m pytest" in commands[1]


def test_relative_links_lead_to_files():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert local, "the README links into the documentation"
    assert [t for t in local if not (ROOT / t).exists()] == []
