"""The project at the end of every assignment from 02 on: the student's run is tracked here, and the
project's automatic checks read what it recorded.

Runs in the student's kernel (Jupyter, Colab) and, for the same notebook, in the grader's kernel.
A `Project` counts optimizer steps against the budget (one step too many is an error), keeps every
validation figure, lets the test set be used once, prints the ablation table and, at the end, the
results table and one machine-readable record line::

    dlcourse-project-record: {"project": "02_cnn", "figures": {"val_accuracy": 0.71, ...}, ...}

The record also holds the losses of the first steps: the grader runs the notebook again with a
small budget (`dlcourse.budget(grading=...)`) and its re-run must start with the same losses, which
shows the figures came from this code. The checks (`submitted_record`, `check_well_formed`,
`check_budget`, `check_test_used_once`, `check_reproduces`) are what a project's tests cell calls:
under the grader they read the record the handed-in notebook printed (the grader writes the
notebook as handed in next to the one it runs), in the student's kernel the record of this session.
`dlcourse report` reads the records the tests cells printed (`record_checked`); this module imports
torch (through dlcourse.env) only when a project runs, so the report's process does not pay for it.
"""

from __future__ import annotations

import glob
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dlcourse.tables import format_table

RECORD_PREFIX = "dlcourse-project-record: "  # the line `Project.report` prints
CHECKED_PREFIX = "dlcourse-project-checked: "  # the line the tests cell prints: what `dlcourse report` reads
RECORD_VERSION = 1
FIRST_STEPS = 10  # losses kept for the grader's re-run to compare
# How close the grader's re-run must come to the recorded first losses: loose enough for a CPU re-run
# of a GPU run (cuDNN kernels, TF32, another summation order), tight enough that another model, seed,
# learning rate or batch order does not pass.
REPRODUCE_RTOL = 0.03
REPRODUCE_ATOL = 0.02


class ProjectError(RuntimeError):
    """A rule of the project was broken (over budget, test set used twice, a malformed figure)."""


def _number(value: Any, what: str) -> float:
    """A figure as a float; tensors and NumPy scalars are fine, a list or a string is not."""
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            raise ProjectError(f"{what} must be one number, got an array of several") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProjectError(f"{what} must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def _show(value: float) -> str:
    return f"{value:g}" if float(value).is_integer() and abs(value) >= 1 else f"{value:.4f}"


class Project:
    """One student's project run: budget, tuning evaluations, the one test evaluation, the record.

    name: the assignment ("02_cnn"); metric: the validation figure the leaderboard ranks by (starts
    with ``val_``); budget_steps: optimizer steps allowed (``dlcourse.budget(full=..., grading=...)``);
    seed: every RNG is seeded with it here, so the grader's re-run starts like the student's run;
    data: which data the run trains on (e.g. ``load_cifar10().source``): the grader, offline, has the
    stand-in, and compares the first losses only with a run on the same data.
    """

    def __init__(self, name: str, metric: str, higher_is_better: bool = True, *, budget_steps: int, seed: int = 0,
                 data: str = ""):
        if not str(metric).startswith("val_"):
            raise ProjectError(f"metric={metric!r} must name a validation figure, such as 'val_accuracy': "
                               "the project is tuned and ranked on validation, never on test")
        if isinstance(budget_steps, bool) or not isinstance(budget_steps, int) or budget_steps < 1:
            raise ProjectError(f"budget_steps={budget_steps!r} must be a whole number of optimizer steps, at least 1")
        self.name, self.metric, self.higher_is_better = str(name), str(metric), bool(higher_is_better)
        from dlcourse.env import seed_everything

        self.budget_steps, self.seed, self.data = budget_steps, seed_everything(seed), str(data)
        self.steps = 0
        self.first_losses: list[float] = []
        self.validations: list[float] = []
        self.test_uses = 0
        self.ablation_rows: list[dict] = []
        self.record: dict | None = None

    @property
    def steps_left(self) -> int:
        return self.budget_steps - self.steps

    def step(self, loss=None) -> None:
        """Count one optimizer step (call it right after ``optimizer.step()``) with its training loss."""
        if self.steps >= self.budget_steps:
            raise ProjectError(
                f"step {self.steps + 1} is over the budget of {self.budget_steps} optimizer steps: stop training at "
                f"project.steps_left == 0 (a loop of `for _ in range(project.steps_left)` fits)")
        self.steps += 1
        if len(self.first_losses) < FIRST_STEPS:
            if loss is None:
                raise ProjectError("project.step(loss): pass the training loss of the step; the grader's re-run "
                                   f"compares the first {FIRST_STEPS}")
            self.first_losses.append(_number(loss, "the loss passed to project.step"))

    def validate(self, value):
        """Record one evaluation on the validation split (tune on these, as often as you like); returns it."""
        self.validations.append(_number(value, f"the {self.metric} passed to project.validate"))
        return value

    def evaluate_test(self, evaluate: Callable[[], Any]):
        """Run `evaluate` (a function of no arguments that measures the test split) once; a second call is refused."""
        if not callable(evaluate):
            raise ProjectError("project.evaluate_test takes a function, e.g. "
                               "project.evaluate_test(lambda: accuracy(model, test_loader))")
        if self.test_uses:
            raise ProjectError("the test set was already used once in this run: tune on validation, and evaluate "
                               "the test set once, at the end (restart the kernel to start the project over)")
        self.test_uses += 1
        return evaluate()

    def ablation(self, rows: Sequence[Mapping[str, Any]]) -> list[dict]:
        """Record and print the ablation table: one row per variant, with ``variant`` and the validation metric."""
        if isinstance(rows, Mapping) or not rows:
            raise ProjectError("project.ablation takes a list of rows, e.g. "
                               f"[{{'variant': 'full model', {self.metric!r}: 0.71}}, ...]")
        clean = []
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, Mapping) or "variant" not in row or self.metric not in row:
                raise ProjectError(f"ablation row {number} needs a 'variant' and a {self.metric!r}: got {row!r}")
            clean.append({"variant": str(row["variant"]),
                          **{str(k): _number(v, f"ablation row {number}, {k}") for k, v in row.items() if k != "variant"}})
        self.ablation_rows = clean
        columns = ["variant", *dict.fromkeys(k for row in clean for k in row if k != "variant")]
        print("\n".join(format_table(columns, [
            [row["variant"], *(_show(row[c]) if c in row else "" for c in columns[1:])] for row in clean])))
        return clean

    def report(self, **figures) -> dict:
        """Print the results table and the record line, and keep the record; call it once, at the end.

        The figures are numbers, the validation metric among them (e.g. val_accuracy=..., test_accuracy=...,
        params=...)."""
        if self.metric not in figures:
            raise ProjectError(f"project.report needs the validation figure: report({self.metric}=..., ...)")
        clean = {str(k): _number(v, f"report's {k}") for k, v in figures.items()}
        self.record = {
            "project": self.name,
            "version": RECORD_VERSION,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "figures": clean,
            "budget_steps": self.budget_steps,
            "steps": self.steps,
            "validations": len(self.validations),
            "test_uses": self.test_uses,
            "seed": self.seed,
            "data": self.data,
            "first_losses": list(self.first_losses),
            "ablation": list(self.ablation_rows),
        }
        rows = [[k, _show(v)] for k, v in clean.items()]
        rows += [["optimizer steps", f"{self.steps} of {self.budget_steps}"],
                 ["validation evaluations", str(len(self.validations))],
                 ["test set used", f"{self.test_uses} time{'s' if self.test_uses != 1 else ''}"]]
        print(f"Project {self.name}: results")
        print("\n".join(format_table(["figure", "value"], rows)))
        print(RECORD_PREFIX + json.dumps(self.record, sort_keys=True))
        return self.record


# -- the automatic checks (a project's tests cell) --------------------------------------------------


def is_grading() -> bool:
    from dlcourse.env import is_grading as grading

    return grading()


def records_in_notebook(nb: Mapping) -> list[dict]:
    """Every record line printed in a notebook's outputs (a dict as nbformat or json reads it), in order."""
    found = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else \
                output.get("data", {}).get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else str(text)
            for line in text.splitlines():
                if line.startswith(RECORD_PREFIX):
                    try:
                        record = json.loads(line[len(RECORD_PREFIX):])
                    except ValueError:
                        record = {"malformed": line[:200]}
                    found.append(record if isinstance(record, dict) else {"malformed": line[:200]})
    return found


def handed_in_record(name: str, folder: str = ".") -> dict | None:
    """The last record of project `name` printed in a notebook of `folder` (under the grader: the notebook as
    handed in, which the grader writes next to the one it runs); None when there is none."""
    notebooks = sorted(glob.glob(os.path.join(folder, "*.ipynb")))
    preferred = [p for p in notebooks if os.path.basename(p) == f"{name}.ipynb"]
    for path in preferred + [p for p in notebooks if p not in preferred]:
        try:
            with open(path, encoding="utf-8") as f:
                nb = json.load(f)
        except (OSError, ValueError):
            continue
        records = [r for r in records_in_notebook(nb) if r.get("project") == name or "malformed" in r]
        if records:
            return records[-1]
    return None


def submitted_record(project: Project) -> dict:
    """The record the checks judge: under the grader the one the handed-in notebook printed (the
    student's full run); in the student's kernel the one `project.report` made in this session."""
    if is_grading():
        record = handed_in_record(project.name)
        if record is None:
            raise AssertionError(f"no project record in the notebook you handed in: run the project to the end "
                                 f"(project.report(...) prints a line starting {RECORD_PREFIX.strip()!r}), save, "
                                 "and hand in the notebook with its outputs")
    else:
        record = project.record
        if record is None:
            raise AssertionError("project.report(...) has not run in this session: run the project cells first")
    print(CHECKED_PREFIX + json.dumps(record, sort_keys=True))
    return record


def check_well_formed(record: Mapping, name: str, metric: str) -> None:
    """The record is the project's, and every field the checks and the report read is there."""
    assert "malformed" not in record, f"the project record line is not valid JSON: {record.get('malformed')!r}"
    assert record.get("project") == name, f"the record is for project {record.get('project')!r}, not {name!r}"
    assert record.get("metric") == metric, f"the record ranks by {record.get('metric')!r}; this project by {metric!r}"
    figures = record.get("figures")
    assert isinstance(figures, dict) and figures, "the record has no figures: project.report(val_...=..., ...)"
    for key, value in figures.items():
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), \
            f"figure {key}={value!r} is not a finite number"
    assert metric in figures, f"the record has no {metric}: pass it to project.report"
    for key in ("steps", "budget_steps", "test_uses", "validations"):
        assert isinstance(record.get(key), int) and record[key] >= 0, f"the record's {key} is missing or not a count"
    losses = record.get("first_losses")
    assert isinstance(losses, list) and all(isinstance(x, (int, float)) for x in losses), \
        "the record's first_losses are missing"
    assert len(losses) == min(FIRST_STEPS, record["steps"]), (
        f"the record holds {len(losses)} first losses for {record['steps']} steps: call project.step(loss) after "
        "every optimizer step")


def check_budget(record: Mapping, budget_steps: int) -> None:
    """Trained within the budget the assignment sets (not one the notebook was edited to allow), and at all."""
    assert record.get("budget_steps") == budget_steps, (
        f"the run had a budget of {record.get('budget_steps')} steps; this project's is {budget_steps}")
    assert 0 < record["steps"] <= budget_steps, \
        f"{record['steps']} optimizer steps recorded; the budget allows 1 to {budget_steps}"


def check_test_used_once(record: Mapping) -> None:
    """The test set was evaluated exactly once (project.evaluate_test), after tuning on validation."""
    uses = record.get("test_uses")
    assert uses == 1, (f"the test set was used {uses} times; use it once, at the end, through "
                       "project.evaluate_test(...)")


def check_reproduces(record: Mapping, project: Project, rtol: float = REPRODUCE_RTOL,
                     atol: float = REPRODUCE_ATOL) -> None:
    """Under the grader: its short re-run of the notebook (`project`) ran the project to its report, with
    the recorded number of parameters and, on the same data, the recorded first losses (within a
    tolerance for another device). In the student's kernel the record is this run's own: nothing to compare."""
    if not is_grading():
        return
    assert project.steps > 0, (
        "the grader's re-run made no optimizer step: the project must train through project.step(loss), "
        "within dlcourse.budget(grading=...) steps")
    assert project.record is not None, (
        "the grader's re-run did not reach project.report(...): a cell of the project stopped with an error "
        "(over the budget? the test set used twice?)")
    recorded, rerun = record.get("figures", {}), project.record["figures"]
    if "params" in recorded and "params" in rerun:
        assert recorded["params"] == rerun["params"], (
            f"your run reports {recorded['params']:g} parameters, the re-run of your code builds {rerun['params']:g}: "
            "the figures must come from the code you hand in")
    if record.get("data") != project.data:  # e.g. real CIFAR-10 in Colab, the stand-in under the grader
        print(f"your run trained on {record.get('data')!r} data, the grader's re-run on {project.data!r}: "
              "the first losses are not comparable, the rest was checked")
        return
    expected = [float(x) for x in record.get("first_losses", [])]
    n = min(len(expected), project.steps, FIRST_STEPS)
    for step, (got, want) in enumerate(zip(project.first_losses[:n], expected[:n]), start=1):
        assert abs(got - want) <= atol + rtol * abs(want), (
            f"the re-run's loss at step {step} is {got:.4f}, your recorded run's {want:.4f}: the figures you report "
            "must come from the code you hand in (same model, data order and seed); restart the kernel, run all, "
            "and hand in that notebook")


def record_checked(text: str) -> dict | None:
    """The record a tests cell printed (a line of its output text), for `dlcourse report`; None if none."""
    for line in str(text).splitlines():
        if line.startswith(CHECKED_PREFIX):
            try:
                record = json.loads(line[len(CHECKED_PREFIX):])
            except ValueError:
                return None
            return record if isinstance(record, dict) else None
    return None
