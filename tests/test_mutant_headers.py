"""A copied mutant whose name was not changed fails `dlcourse check` in one line, instead of TOML
merging it into the first one silently; the edits of one mutant, written one after another, still work."""

from __future__ import annotations

import pytest

from dlcourse.cli import EXIT_COURSE_ERROR, main
from dlcourse.instructor.authoring.build import build
from dlcourse.instructor.authoring.mutants import read_mutants
from tests.conftest import DEMO_MUTANTS

ANOTHER = '\n[[double.off-by-one]]\nfind = "return 2 * x"\nreplace = "return 2 * x + 1"\n'


@pytest.mark.parametrize("spec, message", [
    (DEMO_MUTANTS + ANOTHER.replace("off-by-one", "adds-two"),
     "mutants.toml, line 9: [[double.adds-two]] again, after other mutants (first at line 1): the edits of one "
     "mutant go one after another; if this is another mutant, give it its own name"),
    (DEMO_MUTANTS.replace("[[double.negatives-wrong]]", '[[double.adds-two]]\nfind = "2 * x"\nreplace = "x + 2"\n\n'
                                                        "[[double.negatives-wrong]]"),
     "mutant double.adds-two has the same edit twice: a copied mutant whose name was not changed?"),
], ids=["header again after another mutant", "the same edit twice"])
def test_a_copied_mutant_header_fails_check_in_one_line(demo_course, monkeypatch, capsys, spec, message):
    demo_course.mutants_path("99_demo").write_text(spec)
    build(demo_course, "99_demo", execute_solution=False, log=lambda *_: None)
    monkeypatch.chdir(demo_course.root)
    monkeypatch.delenv("DLCOURSE_ROOT", raising=False)
    assert main(["check", "99_demo"]) == EXIT_COURSE_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_the_edits_of_one_mutant_one_after_another_are_one_mutant(demo_course):
    spec = DEMO_MUTANTS + ANOTHER + '\n[[double.off-by-one]]\nfind = "+ 1"\nreplace = "+ 2"\n'
    mutants = {m.label: m for m in read_mutants(_write(demo_course, spec), {"double"})}
    assert list(mutants) == ["double.adds-two", "double.negatives-wrong", "double.off-by-one"]
    assert mutants["double.off-by-one"].apply("def double(x):\n    return 2 * x") == \
        "def double(x):\n    return 2 * x + 2"
    # a line that looks like a header inside a multi-line string is text, not a header
    inside = DEMO_MUTANTS + "\n[[double.nested]]\nfind = '''\n    return 2 * x'''\nreplace = '''\n[[double.adds-two]]\n'''\n"
    assert len(read_mutants(_write(demo_course, inside), {"double"})) == 3


def _write(course, spec: str):
    path = course.mutants_path("99_demo")
    path.write_text(spec)
    return path
