"""The README and docs/ stay runnable: their links and pictures exist, and the methods, ablation rows and bench
variants their commands name are the ones the code registers (a renamed row would otherwise leave a command that
fails only when a reader copies it)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

from hypernerfgan_ns.method_configs import METHODS
from hypernerfgan_ns.scripts.ablation_rows import ROWS
from hypernerfgan_ns.scripts.bench import VARIANTS

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ABLATE_WORDS = {*ROWS, "..."}
"""Row names, and the "..." by which a study's later commands elide the options they share with its first."""
LINK = re.compile(r"\]\(([^)\s]+)\)")


def code_lines(document: Path) -> Iterator[str]:
    """The lines of a document's fenced code blocks, continuation lines joined, comments dropped."""
    inside, pending = False, ""
    for line in document.read_text().splitlines():
        if line.startswith("```"):
            inside, pending = not inside, ""
            continue
        if not inside:
            continue
        line = pending + line.split("  #")[0].strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if line:
            yield line


def option_values(words: List[str], option: str) -> List[str]:
    """The values after `option` in a command, up to the next option."""
    if option not in words:
        return []
    values = []
    for word in words[words.index(option) + 1 :]:
        if word.startswith("--"):
            break
        values.append(word)
    return values


def commands(*prefix: str) -> Iterator[List[str]]:
    """Every command of the documents' code blocks that starts with the words `prefix`, split into words (without
    leading environment settings such as `OMP_NUM_THREADS=1`)."""
    for document in DOCUMENTS:
        for line in code_lines(document):
            words = shlex.split(line)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                words = words[1:]
            if tuple(words[: len(prefix)]) == prefix:
                yield words


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_relative_link_and_picture_exists(document: Path) -> None:
    targets = [target for target in LINK.findall(document.read_text()) if not re.match(r"[a-z]+:", target)]
    assert targets, f"{document.name} has no relative link: is the pattern still right?"
    missing = [target for target in targets if not (document.parent / target.split("#")[0]).exists()]
    assert not missing, f"{document.name} links to files that do not exist: {missing}"


@pytest.mark.parametrize(
    "subcommand, fewest, method_option, registries",
    [
        (
            "ablate",
            11,
            "--method",
            {"--rows": (ABLATE_WORDS, "ablation_rows.py"), "--on-top-of": (ABLATE_WORDS, "ablation_rows.py")},
        ),
        ("bench", 4, "--methods", {"--variants": (set(VARIANTS), "bench.py")}),
    ],
)
def test_hypernerfgan_commands_name_registered_methods_rows_and_variants(
    subcommand: str, fewest: int, method_option: str, registries: Dict[str, Tuple[Set[str], str]]
) -> None:
    found = list(commands("hypernerfgan", subcommand))
    assert len(found) >= fewest
    for words in found:
        assert set(option_values(words, method_option)) <= set(METHODS), words
        for option, (registry, module) in registries.items():
            unknown = [name for name in option_values(words, option) if name not in registry]
            assert not unknown, f"{' '.join(words)}: {option} {unknown} are not in hypernerfgan_ns/scripts/{module}"


def test_ns_train_commands_name_registered_methods() -> None:
    found = list(commands("ns-train"))
    assert len(found) > 5
    for words in found:
        assert words[1] in METHODS, f"{' '.join(words)}: no method {words[1]!r}"


def listed_rows(text: str) -> List[str]:
    """The row names of the README's "Rows:" paragraph, shorthand expanded: `lr-x0.25/2/4` is lr-x0.25, lr-x2 and
    lr-x4; `r1-gamma-x0.1/x10` is r1-gamma-x0.1 and r1-gamma-x10."""
    paragraph = text[text.index("Rows: ") :].split("\n\n")[0]
    names = []
    for group in re.findall(r"`([a-z][a-z0-9.+/-]*)`", paragraph):
        if group.endswith(".png"):
            continue
        first, *others = group.split("/")
        names.append(first)
        for other in others:
            short_factor = "-x" in first and not other.startswith("x")
            stem = first[: first.rindex("-x") + 2] if short_factor else first[: first.rindex("-") + 1]
            names.append(stem + other)
    return names


def test_the_readme_lists_every_ablation_row() -> None:
    listed = listed_rows((ROOT / "README.md").read_text())
    assert not set(ROWS) - set(listed), f"rows missing from the README's list: {sorted(set(ROWS) - set(listed))}"
    assert not set(listed) - set(ROWS), f"the README lists rows that do not exist: {sorted(set(listed) - set(ROWS))}"
