"""What the 00_setup solution does beyond its graded tests, checked fast (no notebook execution).

- the by-hand exercises stand on their own test cells;
- section 6's pieces (TwoLayerNet, train_one_epoch, evaluate) learn the two moons, as the text
  and the figure say: a bent boundary, well above what a straight line gets.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

NAME = "00_setup"


def test_test_cells_stand_alone(sources):
    from dlcourse.instructor.authoring.self_contained import borrowed_names

    assert borrowed_names(sources(NAME)) == []


def test_section_6_loop_learns_the_moons(solution):
    ns = solution
    torch.manual_seed(0)
    train = DataLoader(ns["MoonsDataset"](800, seed=0), batch_size=32, shuffle=True)
    val = DataLoader(ns["MoonsDataset"](400, seed=1), batch_size=100)
    model = ns["TwoLayerNet"](2, 32, 2, dropout=0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    _, before = ns["evaluate"](model, val, torch.nn.functional.cross_entropy)
    for _ in range(10):
        ns["train_one_epoch"](model, train, optimizer, torch.nn.functional.cross_entropy)
    loss, accuracy = ns["evaluate"](model, val, torch.nn.functional.cross_entropy)
    # a linear classifier of the two moons stays near 85%; the hidden layer must beat it clearly
    assert accuracy > 0.93 and accuracy > before
    assert not model.training  # evaluate leaves the model in evaluation mode


def test_by_hand_exercises_refuse_their_library_call(solution):
    import pytest

    from dlcourse import shortcuts

    leaf = torch.linspace(-1, 1, 4, dtype=torch.float64)
    with shortcuts.by_hand("grad_f", shortcuts.AUTOGRAD):
        ns_grad = solution["grad_f"](leaf)  # the honest formula runs inside the guard
        with pytest.raises(shortcuts.ShortcutError):
            x = leaf.clone().requires_grad_()
            torch.autograd.grad(solution["f"](x), x)
    torch.testing.assert_close(ns_grad, 2 * leaf * torch.sin(leaf) + leaf**2 * torch.cos(leaf))
