"""A small, readable training loop: ``fit`` trains, ``evaluate`` measures.

    >>> history = fit(model, train_loader, optimizer, nn.CrossEntropyLoss(),
    ...               epochs=3, val_loader=test_loader)
    >>> history["val_acc"][-1]
    >>> dlcourse.plots.plot_history(history)

A batch is ``(inputs, targets)``. Accuracy is counted when the model outputs class
scores and the targets are class indices: outputs (B, C) with targets (B,), outputs
(B, T, C) with targets (B, T) (e.g. a language model), or outputs (B, C, H, W) with
targets (B, H, W); for anything else (regression) it is NaN.

Progress bars come from ``tqdm.auto`` (a widget in Jupyter and Colab, text in a
terminal). They are off while grading, in a terminal that is not a TTY, and when
$DLCOURSE_PROGRESS=0; ``progress=False`` turns them off too.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, Iterable

import torch
from torch import nn

from dlcourse.env import autocast_dtype, get_device, is_grading

__all__ = ["fit", "evaluate", "train_one_epoch"]

PROGRESS_ENV = "DLCOURSE_PROGRESS"


def _progress_disabled(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: True = off, None = on unless the terminal is not a TTY."""
    if progress is False or is_grading():
        return True
    if os.environ.get(PROGRESS_ENV, "").strip().lower() in ("0", "false", "no", "off"):
        return True
    return None if progress is None else False


def _bar(iterable: Iterable, *, total: int | None, desc: str, progress: bool | None, leave: bool = False) -> Any:
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=leave, disable=_progress_disabled(progress),
                dynamic_ncols=True)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: _to_device(value, device) for key, value in batch.items()}
    return batch


def _count_correct(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[int, int] | None:
    """(correct, counted) for class scores vs class indices; None when that makes no sense."""
    if not isinstance(outputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        return None
    if targets.is_floating_point() or targets.is_complex() or outputs.ndim != targets.ndim + 1:
        return None
    if outputs.shape[:-1] == targets.shape:  # (B, C) / (B, T, C): classes last
        predicted = outputs.argmax(dim=-1)
    elif outputs.shape[0] == targets.shape[0] and outputs.shape[2:] == targets.shape[1:]:  # (B, C, H, W)
        predicted = outputs.argmax(dim=1)
    else:
        return None
    return int((predicted == targets).sum().item()), targets.numel()


def _autocast(device: torch.device, amp: bool):
    """Mixed precision where the GPU supports it: bfloat16 with native support, else float16; else off."""
    dtype = autocast_dtype(device) if amp else None
    if dtype is not None:
        return torch.autocast(device_type="cuda", dtype=dtype), dtype
    return torch.autocast(device_type=device.type, enabled=False), None


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device,
    *,
    max_steps: int | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    amp: bool = False,
    clip_grad_norm: float | None = None,
    progress: bool | None = None,
    desc: str = "train",
) -> tuple[float, float, int]:
    """One pass over ``loader`` (at most ``max_steps`` batches); returns (mean loss, accuracy, steps).

    ``scheduler``, if given, is stepped after every batch (for per-step schedules such as
    OneCycleLR); :func:`fit` steps per-epoch schedulers itself.
    """
    model.train()
    total_loss, seen, correct, counted, steps = 0.0, 0, 0, 0, 0
    autocast, amp_dtype = _autocast(device, amp)
    if scaler is None and amp_dtype is torch.float16:  # float16 gradients underflow without loss scaling
        scaler = torch.amp.GradScaler("cuda") if hasattr(torch.amp, "GradScaler") else torch.cuda.amp.GradScaler()
    try:
        total = len(loader)  # type: ignore[arg-type]
    except TypeError:
        total = None
    if max_steps is not None:
        total = max_steps if total is None else min(total, max_steps)
    bar = _bar(loader, total=total, desc=desc, progress=progress)
    for inputs, targets in bar:
        if max_steps is not None and steps >= max_steps:
            break
        inputs, targets = _to_device(inputs, device), _to_device(targets, device)
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            outputs = model(inputs)
            loss = loss_fn(outputs, targets)
        if not torch.isfinite(loss.detach()):
            bar.close()
            raise FloatingPointError(
                f"the loss became {loss.item()} at step {steps}: lower the learning rate, or look for "
                "log(0) / division by zero in the model or the loss."
            )
        if scaler is not None:
            scaler.scale(loss).backward()
            if clip_grad_norm is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        steps += 1
        batch_size = _batch_size(targets)
        total_loss += loss.item() * batch_size
        seen += batch_size
        hits = _count_correct(outputs.detach(), targets)
        if hits is not None:
            correct += hits[0]
            counted += hits[1]
        bar.set_postfix(loss=f"{total_loss / max(seen, 1):.4f}", refresh=False)
    bar.close()
    mean_loss = total_loss / seen if seen else math.nan
    accuracy = correct / counted if counted else math.nan
    return mean_loss, accuracy, steps


def _batch_size(targets: Any) -> int:
    if isinstance(targets, torch.Tensor) and targets.ndim > 0:
        return int(targets.shape[0])
    return 1


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    device: torch.device | str | None = None,
    *,
    max_steps: int | None = None,
    progress: bool | None = None,
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` over ``loader`` (no gradients, eval mode).

    Args:
        loader: yields ``(inputs, targets)`` batches.
        loss_fn: e.g. ``nn.CrossEntropyLoss()`` (mean over the batch).
        device: where to run; None = the device of the model's parameters.
        max_steps: stop after this many batches (a quick estimate).

    Returns:
        ``(loss, accuracy)``: loss averaged over examples; accuracy in [0, 1], NaN when
        the outputs are not class scores (see the module docstring).
    """
    device = _resolve_device(model, device, move=False)
    was_training = model.training
    model.eval()
    total_loss, seen, correct, counted = 0.0, 0, 0, 0
    try:
        for step, (inputs, targets) in enumerate(_bar(loader, total=None, desc="eval", progress=progress)):
            if max_steps is not None and step >= max_steps:
                break
            inputs, targets = _to_device(inputs, device), _to_device(targets, device)
            outputs = model(inputs)
            batch_size = _batch_size(targets)
            total_loss += loss_fn(outputs, targets).item() * batch_size
            seen += batch_size
            hits = _count_correct(outputs, targets)
            if hits is not None:
                correct += hits[0]
                counted += hits[1]
    finally:
        model.train(was_training)
    return (total_loss / seen if seen else math.nan), (correct / counted if counted else math.nan)


def _resolve_device(model: nn.Module, device: torch.device | str | None, *, move: bool) -> torch.device:
    if device is None:
        parameter = next(model.parameters(), None)
        if parameter is not None and not move:
            return parameter.device
        device = get_device()
    device = torch.device(device)
    if move:
        model.to(device)
    return device


def fit(
    model: nn.Module,
    train_loader: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    epochs: int = 1,
    device: torch.device | str | None = None,
    val_loader: Iterable | None = None,
    max_steps: int | None = None,
    scheduler: Any = None,
    *,
    scheduler_interval: str = "epoch",
    amp: bool = False,
    scaler: Any = None,
    clip_grad_norm: float | None = None,
    progress: bool | None = None,
    verbose: bool = True,
) -> dict[str, list[float]]:
    """Train ``model`` for ``epochs`` passes over ``train_loader``; return the history.

    Args:
        model: moved to ``device`` (None: ``dlcourse.get_device()``, i.e. the GPU when there is one).
        train_loader, val_loader: yield ``(inputs, targets)``; inputs e.g. (B, C, H, W),
            targets (B,) class indices or any shape ``loss_fn`` accepts.
        optimizer: built on ``model.parameters()``.
        loss_fn: ``loss_fn(outputs, targets) -> scalar`` (mean over the batch).
        epochs: passes over the training data.
        max_steps: stop after this many optimizer steps in total (a budget; the last
            epoch may be partial, and its metrics are recorded).
        scheduler: a learning-rate scheduler, stepped once per epoch
            (``scheduler_interval="epoch"``; ReduceLROnPlateau gets the validation loss)
            or after every batch (``"step"``, e.g. OneCycleLR).
        amp: mixed precision on a CUDA GPU (bfloat16 where supported, else float16 with a
            GradScaler, or pass ``scaler``); ignored on CPU and MPS.
        clip_grad_norm: clip the gradient norm to this value (RNNs like it).
        progress: False hides the progress bars (they are off while grading anyway).
        verbose: print one line per epoch (loss, accuracy, validation).

    Returns:
        ``{"train_loss": [...], "train_acc": [...], "val_loss": [...], "val_acc": [...],
        "lr": [...]}``, one value per epoch; the ``val_*`` lists stay empty without a
        ``val_loader``; accuracies are NaN when the outputs are not class scores.
    """
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
    device = _resolve_device(model, device, move=True)
    history: dict[str, list[float]] = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": [], "lr": []}
    steps_done = 0
    for epoch in range(1, epochs + 1):
        if max_steps is not None and steps_done >= max_steps:
            break
        loss, acc, steps = train_one_epoch(
            model, train_loader, optimizer, loss_fn, device,
            max_steps=None if max_steps is None else max_steps - steps_done,
            scheduler=scheduler if scheduler_interval == "step" else None,
            scaler=scaler, amp=amp, clip_grad_norm=clip_grad_norm, progress=progress,
            desc=f"epoch {epoch}/{epochs}",
        )
        steps_done += steps
        history["train_loss"].append(loss)
        history["train_acc"].append(acc)
        history["lr"].append(optimizer.param_groups[0]["lr"])
        line = f"epoch {epoch}/{epochs}: train loss {loss:.4f}" + ("" if math.isnan(acc) else f", acc {acc:.3f}")
        if val_loader is not None:
            val_loss, val_acc = evaluate(model, val_loader, loss_fn, device, progress=progress)
            history["val_loss"].append(val_loss)
            history["val_acc"].append(val_acc)
            line += f" | val loss {val_loss:.4f}" + ("" if math.isnan(val_acc) else f", acc {val_acc:.3f}")
        if scheduler is not None and scheduler_interval == "epoch":
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(history["val_loss"][-1] if val_loader is not None else loss)
            else:
                scheduler.step()
        if verbose:
            print(line)
    return history
