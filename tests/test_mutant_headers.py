"""A copied mutant whose name was not changed fails `dlcourse check` in one line, instead of TOML
merging it into the first one silently: a mutant is one table, so its header written twice (right below
the original or further down) is always a copy. The edits of one mutant are one `edits = [...]`."""

from __future__ import annotations

import pytest

from dlcourse.cli import EXIT_COURSE_ERROR, main
from dlcourse.instructor.authoring.build import build
from dlcourse.instructor.authoring.mutants import read_mutants
from tests.conftest import DEMO_MUTANTS

ANOTHER = '\n[double.off-by-one]\nfind = "return 2 * x"\nreplace = "return 2 * x + 1"\n'
# DEMO_MUTANTS's first mutant copied right below itself, its edit changed but not its name
COPIED_BELOW = DEMO_MUTANTS.replace("\n\n[double.negatives-wrong]",
                                    '\n[double.adds-two]\nfind = "2 * x"\nreplace = "x + 3"\n\n[double.negatives-wrong]')


@pytest.mark.parametrize("spec, message", [
    (COPIED_BELOW,
     "mutants.toml, line 4: [double.adds-two] again (first at line 1): a copied mutant? Give it its own name; "
     "the edits of one mutant go in one edits = [...]"),
    (DEMO_MUTANTS + ANOTHER.replace("off-by-one", "adds-two"),
     "mutants.toml, line 9: [double.adds-two] again (first at line 1): a copied mutant? Give it its own name"),
    (DEMO_MUTANTS.replace('find = "2 * x"\nreplace = "x + 2"',
                          'edits = [\n    { find = "2 * x", replace = "x + 2" },\n    { find = "2 * x", replace = "x + 2" },\n]'),
     "mutant double.adds-two has the same edit twice in its edits; remove the copy"),
    (DEMO_MUTANTS.replace("[double.adds-two]", "[[double.adds-two]]"),
     'mutants.toml, line 1: [[double.adds-two]] is the old form (a table per edit); write one table per mutant, '
     '[double.adds-two] with find = "..." and replace = "...", or for several edits '
     'edits = [{ find = "...", replace = "..." }, ...]'),
], ids=["copied right below its original", "header again after another mutant", "the same edit twice",
        "the old form, a table per edit"])
def test_a_copied_mutant_header_fails_check_in_one_line(demo_course, monkeypatch, capsys, spec, message):
    demo_course.mutants_path("99_demo").write_text(spec)
    build(demo_course, "99_demo", execute_solution=False, log=lambda *_: None)
    monkeypatch.chdir(demo_course.root)
    monkeypatch.delenv("DLCOURSE_ROOT", raising=False)
    assert main(["check", "99_demo"]) == EXIT_COURSE_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_the_edits_of_one_mutant_are_applied_in_order(demo_course):
    several = '\n[double.off-by-one]\nedits = [\n    { find = "return 2 * x", replace = "return 2 * x + 1" },\n' \
              '    { find = "+ 1", replace = "+ 2" },\n]\n'
    mutants = {m.label: m for m in read_mutants(_write(demo_course, DEMO_MUTANTS + several), {"double"})}
    assert list(mutants) == ["double.adds-two", "double.negatives-wrong", "double.off-by-one"]
    assert mutants["double.off-by-one"].apply("def double(x):\n    return 2 * x") == \
        "def double(x):\n    return 2 * x + 2"
    # a line that looks like a header inside a multi-line string is text, not a header
    inside = DEMO_MUTANTS + "\n[double.nested]\nfind = '''\n    return 2 * x'''\nreplace = '''\n[double.adds-two]\n'''\n"
    assert len(read_mutants(_write(demo_course, inside), {"double"})) == 3


def _write(course, spec: str):
    path = course.mutants_path("99_demo")
    path.write_text(spec)
    return path
