"""dlcourse.train (fit / evaluate) and dlcourse.plots (figures, never blocking)."""

import math

import matplotlib

matplotlib.use("Agg")  # no window, whatever the machine has

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from dlcourse import plots  # noqa: E402
from dlcourse.train import evaluate, fit  # noqa: E402


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    yield
    plt.close("all")


def blobs(n=256, seed=0):
    """Two Gaussian blobs in 2D: a problem a linear model solves."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    points = torch.randn(n, 2, generator=generator) + 3.0 * (labels[:, None] * 2 - 1)
    return TensorDataset(points, labels)


def test_fit_reduces_the_loss_and_learns():
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    train = DataLoader(blobs(seed=0), batch_size=32, shuffle=True)
    val = DataLoader(blobs(seed=1), batch_size=64)
    before, _ = evaluate(model, val, nn.CrossEntropyLoss(), "cpu")
    history = fit(model, train, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), epochs=3,
                  device="cpu", val_loader=val, progress=False, verbose=False)
    assert set(history) >= {"train_loss", "train_acc", "val_loss", "val_acc"}
    assert all(len(history[key]) == 3 for key in ("train_loss", "train_acc", "val_loss", "val_acc"))
    assert history["val_loss"][-1] < before
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["val_acc"][-1] > 0.95
    loss, accuracy = evaluate(model, val, nn.CrossEntropyLoss(), "cpu")
    assert loss == pytest.approx(history["val_loss"][-1]) and 0.95 < accuracy <= 1.0


def test_fit_prints_one_line_per_epoch(capsys):
    model = nn.Linear(2, 2)
    fit(model, DataLoader(blobs(), batch_size=64), torch.optim.SGD(model.parameters(), lr=0.1),
        nn.CrossEntropyLoss(), epochs=2, device="cpu", progress=False)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2: train loss")


def test_max_steps_limits_training():
    model = nn.Linear(2, 2)
    seen = []
    original_forward = model.forward
    model.forward = lambda x: (seen.append(len(x)), original_forward(x))[1]
    history = fit(model, DataLoader(blobs(n=256), batch_size=32), torch.optim.SGD(model.parameters(), lr=0.1),
                  nn.CrossEntropyLoss(), epochs=5, device="cpu", max_steps=3, progress=False, verbose=False)
    assert len(seen) == 3 and len(history["train_loss"]) == 1


def test_regression_has_nan_accuracy_and_no_val_without_a_loader():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    model = nn.Linear(3, 1)
    history = fit(model, DataLoader(TensorDataset(x, y), batch_size=16), torch.optim.SGD(model.parameters(), lr=0.1),
                  nn.MSELoss(), epochs=4, device="cpu", progress=False, verbose=False)
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert all(math.isnan(a) for a in history["train_acc"])
    assert history["val_loss"] == [] and history["val_acc"] == []


def test_sequence_outputs_count_accuracy_per_position():
    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(5))

        def forward(self, x):  # (B, T) -> (B, T, 5) scores, always class 2
            scores = torch.zeros(*x.shape, 5)
            scores[..., 2] = 1.0
            return scores + self.bias

    x = torch.zeros(4, 6, dtype=torch.long)
    y = torch.full((4, 6), 2)
    y[0, 0] = 1  # 23 of 24 positions right
    loss_fn = lambda out, t: nn.functional.cross_entropy(out.flatten(0, 1), t.flatten())  # noqa: E731
    _, accuracy = evaluate(Constant(), [(x, y)], loss_fn, "cpu")
    assert accuracy == pytest.approx(23 / 24)


def test_evaluate_restores_training_mode_and_needs_no_grad():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    model.train()
    evaluate(model, DataLoader(blobs(n=32), batch_size=16), nn.CrossEntropyLoss(), "cpu")
    assert model.training


def test_a_diverging_loss_stops_with_advice():
    x = torch.randn(64, 3)
    model = nn.Linear(3, 1)
    with pytest.raises(FloatingPointError, match="learning rate"):  # SGD on MSE with a huge step explodes
        fit(model, DataLoader(TensorDataset(x, 10 * x[:, :1]), batch_size=16),
            torch.optim.SGD(model.parameters(), lr=1e6), nn.MSELoss(), epochs=20, device="cpu",
            progress=False, verbose=False)


def test_progress_bars_are_off_while_grading(monkeypatch):
    from dlcourse import train

    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert train._progress_disabled(True) is True
    monkeypatch.delenv("NBGRADER_EXECUTION")
    assert train._progress_disabled(None) is None  # tqdm decides: on in a notebook or a terminal
    assert train._progress_disabled(False) is True
    monkeypatch.setenv("DLCOURSE_PROGRESS", "0")
    assert train._progress_disabled(None) is True


def test_plot_history_returns_a_figure_with_loss_and_accuracy():
    history = {"train_loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.7, 0.6],
               "train_acc": [0.5, 0.8, 0.9], "val_acc": [0.4, 0.7, 0.8]}
    fig = plots.plot_history(history)
    assert isinstance(fig, Figure)
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy"]
    assert len(fig.axes[0].lines) == 2


def test_plot_history_skips_missing_accuracy():
    fig = plots.plot_history({"train_loss": [1.0, 0.5], "train_acc": [float("nan")] * 2, "val_loss": [],
                              "val_acc": []})
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss"]
    with pytest.raises(ValueError, match="no curves"):
        plots.plot_history({"lr": [0.1]})


@pytest.mark.parametrize("images", [
    torch.rand(10, 1, 28, 28),
    torch.rand(10, 28, 28),
    torch.rand(10, 3, 32, 32),
    (torch.rand(10, 3, 32, 32) * 255).to(torch.uint8),
    np.random.default_rng(0).random((10, 32, 32, 3)),
    torch.randn(10, 3, 32, 32),  # normalised images: stretched for display
    [torch.rand(3, 8, 8) for _ in range(10)],
], ids=["N1HW", "NHW", "N3HW", "uint8", "NHWC-numpy", "normalised", "list"])
def test_show_images_returns_a_grid(images):
    fig = plots.show_images(images, labels=list(range(10)), nrow=4)
    assert isinstance(fig, Figure)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 10 and len(fig.axes) == 12  # 3 rows of 4
    assert shown[3].get_title() == "3"


def test_show_images_titles_class_names_and_predictions():
    fig = plots.show_images(torch.rand(3, 1, 8, 8), labels=torch.tensor([0, 1, 2]), predictions=[0, 2, 2],
                            class_names=["cat", "dog", "owl"])
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["cat / cat", "dog / owl", "owl / owl"]
    assert matplotlib.colors.to_hex(fig.axes[1].title.get_color()) == "#ff0000"  # a wrong prediction in red
    fig = plots.show_images(torch.rand(2, 8, 8), titles=["a", "b"])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]


def test_plots_never_block(monkeypatch):
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plt.show() was called"))
    plots.plot_history({"train_loss": [1.0]})
    plots.show_images(torch.rand(1, 1, 4, 4))


def test_schedulers_and_amp_on_cpu():
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    history = fit(model, DataLoader(blobs(n=64), batch_size=32), optimizer, nn.CrossEntropyLoss(), epochs=3,
                  device="cpu", scheduler=scheduler, amp=True, progress=False, verbose=False)  # amp: CUDA only
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    fit(model, DataLoader(blobs(n=64), batch_size=32), optimizer, nn.CrossEntropyLoss(), epochs=1, device="cpu",
        val_loader=DataLoader(blobs(n=32), batch_size=32), scheduler=plateau, progress=False, verbose=False)
    one_cycle = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=4)
    fit(model, DataLoader(blobs(n=64), batch_size=16), optimizer, nn.CrossEntropyLoss(), epochs=1, device="cpu",
        scheduler=one_cycle, scheduler_interval="step", progress=False, verbose=False)
    assert one_cycle.last_epoch == 4
