"""``docs/reliability.md`` backs each promise with tests by name: every name it gives exists."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_test_the_reliability_page_names_exists():
    text = (REPO / "docs" / "reliability.md").read_text(encoding="utf-8")
    named, current = [], None
    for file, test in re.findall(r"`(test_\w+\.py)?(?:::(test_\w+))?`", text):
        if not (file or test):
            continue
        current = file or current
        assert (REPO / "tests" / current).is_file(), current
        if test:
            named.append((current, test))
    assert len(named) > 30
    missing = [f"{file}::{test}" for file, test in named
               if not re.search(rf"^def {test}\(", (REPO / "tests" / file).read_text(encoding="utf-8"), re.M)]
    assert missing == []
