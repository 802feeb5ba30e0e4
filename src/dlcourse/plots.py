"""Plots for the notebooks: training curves and image grids (matplotlib; every function returns the Figure).

    >>> plot_history(history)                       # loss and accuracy per epoch
    >>> show_images(images[:16], labels[:16], class_names=train_set.classes)

In Jupyter and Colab the figure shows exactly once, whether or not the call is the
last line of the cell. Elsewhere nothing blocks: save it with ``fig.savefig(path)``
or call ``plt.show()`` yourself.
"""

from __future__ import annotations

import math
import types
from typing import Any, Sequence

import numpy as np

from dlcourse.arrays import to_numpy

__all__ = ["plot_history", "show_images"]


def _ipython_shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    # a Jupyter/Colab kernel, not a terminal IPython (which shows figures with plt.show())
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


def _finish(fig: Any) -> Any:
    """Show ``fig`` once in a notebook (and not again when it is the cell's last value); return it."""
    shell = _ipython_shell()
    if shell is None:
        return fig
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(fig)
    plt.close(fig)  # out of pyplot's list: the inline backend would show it a second time
    shown_in_cell = shell.execution_count

    def _ipython_display_(self: Any) -> None:
        if getattr(shell, "execution_count", None) == shown_in_cell:
            return  # the cell's last value: already shown above
        del self._ipython_display_
        try:
            display(self)
        finally:
            self._ipython_display_ = types.MethodType(_ipython_display_, self)

    fig._ipython_display_ = types.MethodType(_ipython_display_, fig)
    return fig


def _finite(values: Sequence[float]) -> bool:
    return any(v is not None and not (isinstance(v, float) and math.isnan(v)) for v in values)


def plot_history(history: dict[str, Sequence[float]], *, title: str | None = None) -> Any:
    """Loss and accuracy curves from :func:`dlcourse.train.fit`'s history; returns the Figure.

    Args:
        history: ``{"train_loss": [...], "val_loss": [...], "train_acc": [...], "val_acc": [...]}``,
            one value per epoch; missing, empty or all-NaN lists are skipped (no accuracy
            panel for a regression).
    """
    import matplotlib.pyplot as plt

    panels = []
    for metric, label in (("loss", "loss"), ("acc", "accuracy")):
        series = {split: history.get(f"{split}_{metric}", []) for split in ("train", "val")}
        series = {split: [float(v) for v in values] for split, values in series.items() if values and _finite(values)}
        if series:
            panels.append((label, series))
    if not panels:
        raise ValueError(
            "the history has no curves to plot: expected lists under train_loss / val_loss / train_acc / val_acc, "
            f"got keys {sorted(history)}"
        )
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for ax, (label, series) in zip(axes[0], panels):
        for split, values in series.items():
            epochs = range(1, len(values) + 1)
            ax.plot(epochs, values, marker="o" if len(values) < 30 else None, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend()
        if max(len(v) for v in series.values()) < 15:
            ax.set_xticks(range(1, max(len(v) for v in series.values()) + 1))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig)


def _as_image_batch(images: Any) -> np.ndarray:
    """(N, H, W) or (N, H, W, 3) float in [0, 1] from tensors/arrays (N, C, H, W), (N, H, W),
    (N, H, W, C), a list of (C, H, W)/(H, W) images or one (H, W) image."""
    if isinstance(images, (list, tuple)):
        array = np.stack([to_numpy(image) for image in images])
    else:
        array = to_numpy(images)
    if array.ndim == 2:  # one (H, W) image
        array = array[None]
    if array.ndim == 4:
        if array.shape[1] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
            array = array.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
        if array.shape[-1] == 1:
            array = array[..., 0]
        elif array.shape[-1] == 4:
            array = array[..., :3]
    if array.ndim not in (3, 4):
        raise ValueError(
            f"show_images needs images of shape (N, C, H, W), (N, H, W) or (N, H, W, C); got {array.shape}"
        )
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    array = array.astype(np.float32)
    low, high = float(np.nanmin(array)), float(np.nanmax(array))
    if low < 0 or high > 1:  # e.g. normalised images: stretch each one to [0, 1] for display
        axes = tuple(range(1, array.ndim))
        lo = array.min(axis=axes, keepdims=True)
        hi = array.max(axis=axes, keepdims=True)
        array = (array - lo) / np.maximum(hi - lo, 1e-12)
    return array


def show_images(
    images: Any,
    labels: Sequence[Any] | None = None,
    titles: Sequence[str] | None = None,
    nrow: int = 8,
    *,
    class_names: Sequence[str] | None = None,
    predictions: Sequence[Any] | None = None,
    cmap: str = "gray",
    scale: float = 1.4,
    suptitle: str | None = None,
) -> Any:
    """A grid of images, ``nrow`` per row, with optional labels or titles; returns the Figure.

    Args:
        images: tensor or array (N, C, H, W) with C in {1, 3}, (N, H, W), (N, H, W, C), or a
            list of (C, H, W) images; float in [0, 1] or uint8 (other float ranges, e.g.
            normalised images, are stretched to [0, 1] per image).
        labels: N class indices (ints or 0-d tensors) shown above each image, through
            ``class_names`` when given.
        titles: N strings; override ``labels``.
        nrow: images per row (as in ``torchvision.utils.make_grid``).
        predictions: N predicted class indices: the title becomes "label / prediction",
            red when they differ.
    """
    import matplotlib.pyplot as plt

    batch = _as_image_batch(images)
    count = len(batch)
    if count == 0:
        raise ValueError("show_images got no images")

    def name(value: Any) -> str:
        value = int(value.item()) if hasattr(value, "item") else value
        return str(class_names[value]) if class_names is not None else str(value)

    cols = max(1, min(nrow, count))
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(scale * cols, scale * rows + (0.4 if suptitle else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= count:
            continue
        ax.imshow(batch[i], cmap=cmap if batch[i].ndim == 2 else None, vmin=0, vmax=1)
        title, colour = None, "black"
        if titles is not None:
            title = str(titles[i])
        elif labels is not None:
            title = name(labels[i])
            if predictions is not None:
                title += f" / {name(predictions[i])}"
                colour = "black" if name(labels[i]) == name(predictions[i]) else "red"
        elif predictions is not None:
            title = name(predictions[i])
        if title is not None:
            ax.set_title(title, fontsize=9, color=colour)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return _finish(fig)
