"""The student-side project tracker (dlcourse.projects): the budget, the one use of the test set, the
printed record, and the automatic checks a project's tests cell runs, in the student's kernel and
under the grader (which reads the record from the notebook as handed in and re-runs the first steps)."""

from __future__ import annotations

import json

import nbformat
import pytest
import torch

from dlcourse import projects
from dlcourse.projects import Project, ProjectError


def train(project: Project, steps: int, lr: float = 0.1, seed_shift: int = 0) -> torch.nn.Module:
    """A tiny regression trained through the project: what a notebook's project cell does."""
    torch.manual_seed(project.seed + seed_shift)
    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for step in range(steps):
        batch = slice((8 * step) % 64, (8 * step) % 64 + 8)
        loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        project.step(loss)
    return model


def full_run(capsys, steps: int = 30, budget: int = 40, data: str = "synthetic",
             **train_options) -> tuple[Project, dict, str]:
    project = Project("99_demo", metric="val_loss", higher_is_better=False, budget_steps=budget, data=data)
    train(project, steps, **train_options)
    project.validate(0.9)
    project.validate(torch.tensor(0.8))
    test_loss = project.evaluate_test(lambda: 0.85)
    project.ablation([{"variant": "full model", "val_loss": 0.8}, {"variant": "no bias", "val_loss": 0.95}])
    record = project.report(val_loss=0.8, test_loss=test_loss, params=5)
    return project, record, capsys.readouterr().out


def grader_rerun(steps: int = 12, report: bool = True, params: int = 5, data: str = "synthetic",
                 **train_options) -> Project:
    """The grader's short run of the same notebook (dlcourse.budget(grading=12))."""
    rerun = Project("99_demo", metric="val_loss", higher_is_better=False, budget_steps=12, data=data)
    train(rerun, steps, **train_options)
    if report:
        rerun.evaluate_test(lambda: 1.0)
        rerun.report(val_loss=1.0, test_loss=1.0, params=params)
    return rerun


def handed_in(folder, printed: str, name: str = "99_demo.ipynb") -> None:
    """The student's notebook as the grader writes it next to the one it runs: outputs included."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("project.report(...)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    nb.cells = [cell]
    nbformat.write(nb, str(folder / name))


def test_a_step_over_the_budget_is_refused_with_what_to_do():
    project = Project("99_demo", metric="val_accuracy", budget_steps=3)
    for _ in range(3):
        project.step(torch.tensor(1.0))
    assert project.steps_left == 0
    with pytest.raises(ProjectError, match=r"step 4 is over the budget of 3 .*steps_left"):
        project.step(torch.tensor(1.0))
    assert project.steps == 3


def test_the_test_set_is_evaluated_once_and_a_second_use_is_refused():
    project = Project("99_demo", metric="val_accuracy", budget_steps=3)
    calls = []
    assert project.evaluate_test(lambda: calls.append(1) or 0.7) == 0.7
    with pytest.raises(ProjectError, match="already used once"):
        project.evaluate_test(lambda: calls.append(1) or 0.9)
    assert calls == [1]


def test_the_project_is_ranked_on_validation_and_needs_a_step_budget():
    with pytest.raises(ProjectError, match="validation figure"):
        Project("99_demo", metric="test_accuracy", budget_steps=10)
    with pytest.raises(ProjectError, match="whole number of optimizer steps"):
        Project("99_demo", metric="val_accuracy", budget_steps=0)


def test_the_first_losses_need_the_loss_and_a_number():
    project = Project("99_demo", metric="val_accuracy", budget_steps=30)
    with pytest.raises(ProjectError, match="pass the training loss"):
        project.step()
    with pytest.raises(ProjectError, match="one number"):
        project.step(torch.ones(3))


def test_report_prints_the_results_table_and_a_record_a_notebook_gives_back(capsys, tmp_path):
    project, record, printed = full_run(capsys)
    assert "Project 99_demo: results" in printed
    assert "val_loss" in printed and "30 of 40" in printed and "1 time" in printed
    assert "no bias" in printed and "0.9500" in printed  # the ablation table
    assert record["figures"] == {"val_loss": 0.8, "test_loss": 0.85, "params": 5.0}
    assert record["steps"] == 30 and record["budget_steps"] == 40 and record["test_uses"] == 1
    assert record["validations"] == 2
    assert len(record["first_losses"]) == projects.FIRST_STEPS
    handed_in(tmp_path, printed)
    assert projects.handed_in_record("99_demo", str(tmp_path)) == json.loads(json.dumps(record))
    assert projects.handed_in_record("02_cnn", str(tmp_path)) is None


def test_the_checks_pass_a_whole_run_in_the_students_kernel(capsys, monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    project, _, _ = full_run(capsys)
    record = projects.submitted_record(project)
    assert projects.record_checked(capsys.readouterr().out) == record  # what `dlcourse report` reads
    projects.check_well_formed(record, "99_demo", "val_loss")
    projects.check_budget(record, 40)
    projects.check_test_used_once(record)
    projects.check_reproduces(record, project)


@pytest.mark.parametrize("change, message", [
    (lambda r: r["figures"].pop("val_loss"), "no val_loss"),
    (lambda r: r["figures"].update(val_loss=float("nan")), "not a finite number"),
    (lambda r: r.update(project="03_rnn"), "not '99_demo'"),
    (lambda r: r.update(first_losses=r["first_losses"][:3]), "holds 3 first losses"),
])
def test_a_malformed_record_fails_with_what_is_wrong(capsys, change, message):
    _, record, _ = full_run(capsys)
    change(record)
    with pytest.raises(AssertionError, match=message):
        projects.check_well_formed(record, "99_demo", "val_loss")


def test_the_budget_and_the_one_test_use_are_checked_against_the_assignments_numbers(capsys):
    _, record, _ = full_run(capsys, steps=30, budget=40)
    projects.check_budget(record, 40)
    with pytest.raises(AssertionError, match="budget of 40 steps; this project's is 20"):
        projects.check_budget(record, 20)  # a notebook edited to allow more steps
    with pytest.raises(AssertionError, match="used 0 times"):
        projects.check_test_used_once({**record, "test_uses": 0})
    unfinished = Project("99_demo", metric="val_loss", budget_steps=40)
    with pytest.raises(AssertionError, match="1 to 40"):
        projects.check_budget(unfinished.report(val_loss=1.0), 40)


def test_under_the_grader_the_record_comes_from_the_handed_in_notebook(capsys, tmp_path, monkeypatch):
    _, record, printed = full_run(capsys)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    rerun = grader_rerun()
    with pytest.raises(AssertionError, match="no project record in the notebook you handed in"):
        projects.submitted_record(rerun)  # a blank notebook, or one handed in without outputs
    handed_in(tmp_path, printed)
    assert projects.submitted_record(rerun) == json.loads(json.dumps(record))
    projects.check_reproduces(record, rerun)


@pytest.mark.parametrize("other_run", [dict(lr=0.5), dict(seed_shift=1)])
def test_the_grader_rerun_must_start_like_the_recorded_run(capsys, monkeypatch, other_run):
    """Figures from another model, learning rate or seed than the code handed in do not reproduce."""
    _, record, _ = full_run(capsys)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    rerun = grader_rerun(**other_run)
    with pytest.raises(AssertionError, match="the re-run's loss at step"):
        projects.check_reproduces(record, rerun)


def test_the_grader_rerun_tolerates_another_devices_rounding(capsys, monkeypatch):
    _, record, _ = full_run(capsys)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    rerun = grader_rerun()
    rerun.first_losses = [x * (1 + 1e-3) for x in rerun.first_losses]  # a GPU's float32 differences, and then some
    projects.check_reproduces(record, rerun)


def test_the_grader_rerun_must_train_reach_the_report_and_build_the_same_model(capsys, monkeypatch):
    _, record, _ = full_run(capsys)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    with pytest.raises(AssertionError, match="re-run made no optimizer step"):
        projects.check_reproduces(record, grader_rerun(steps=0))
    with pytest.raises(AssertionError, match="did not reach project.report"):
        projects.check_reproduces(record, grader_rerun(report=False))  # a cell stopped: over budget, test twice
    with pytest.raises(AssertionError, match="reports 5 parameters, the re-run of your code builds 7"):
        projects.check_reproduces(record, grader_rerun(params=7))


def test_a_run_on_other_data_than_the_graders_is_checked_without_its_losses(capsys, monkeypatch):
    """A Colab run on the real data set, re-run offline on the stand-in: the losses cannot agree."""
    _, record, _ = full_run(capsys, data="cifar10")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    projects.check_reproduces(record, grader_rerun(lr=0.5))
    assert "not comparable" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="parameters"):
        projects.check_reproduces(record, grader_rerun(params=7))
