"""Matplotlib figures of a search: learning curves, confusion matrix, the worst mistakes, first-layer
weights, and the shape of the search. Pure functions: arrays and tables in, a Figure out; logging
them is nnlab.tracking's job. Figures are built without pyplot (no global state, nothing to close
between trials) and drawn with the Agg backend, so no display is needed.

Layouts are fixed in inches rather than solved: matplotlib's constrained layout took about half
of each figure's drawing time, and a grid of image panels is drawn as tiles in one Axes (one set
of axes and ticks to lay out instead of one per tile), the same picture at a fraction of the cost.
"""

from __future__ import annotations

import io
import math
from typing import Callable

# No matplotlib.use("Agg"): figures are made without pyplot and drawn to files by themselves, and
# a notebook's own plots keep its inline backend.
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nnlab.formats import counted

# Weights drawn with a diverging map centred on 0: positive red, negative blue, zero white.
WEIGHT_COLOURS = "RdBu_r"
MOST_MAPS = 64  # units drawn of a wide first dense layer, enough to see what they respond to
# Axes titles where matplotlib would put them when no tick labels sit on top; given, it skips
# measuring every Axes' ticks to place them (a third of drawing a grid of panels).
TITLE_Y = 1.0


def png(figure: Figure) -> bytes:
    """The figure rendered as PNG, as MLflow's log_figure would save it but for the compression:
    zlib's fastest level, the same pixels in a file an eighth larger, 0.07 s a figure sooner."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def draw_all(figures: dict[str, Callable[[], Figure]]) -> tuple[dict[str, bytes], dict[str, Exception]]:
    """Each figure drawn and rendered as PNG: the images by name, and the error that stopped each
    other one, so that a figure never costs more than its message. (Drawn on the caller's thread:
    on two cores a drawing thread slowed the champion's test pass by more than it saved.)"""
    images, errors = {}, {}
    for name, make in figures.items():
        try:
            images[name] = png(make())
        except Exception as error:  # noqa: BLE001 - whatever matplotlib raises
            errors[name] = error
    return images, errors


def _margins(figure: Figure, left: float, right: float, bottom: float, top: float, wspace: float = 0.0,
             hspace: float = 0.0, columns: int = 1, rows: int = 1) -> None:
    """Margins and the gaps between panels in inches, whatever the figure's size."""
    width, height = figure.get_size_inches()
    panel_width = (width - left - right - wspace * (columns - 1)) / columns
    panel_height = (height - bottom - top - hspace * (rows - 1)) / rows
    figure.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                           wspace=wspace / panel_width, hspace=hspace / panel_height)


def _tiles(maps: list, titles: list[str], columns: int, tile_inches: float, title_lines: int, fontsize: float,
           heading: str, colorbar_label: str | None = None, **image_options) -> Figure:
    """Images in a grid, each under its title, drawn as tiles of one Axes (one AxesImage per
    tile, in order, holding the tile's own array; the titles are that Axes' texts, in order)."""
    rows = max(1, math.ceil(len(maps) / columns))
    height, width = np.shape(maps[0])[:2]
    # Data units: a tile is `width` wide; the gap and the title band scale with it.
    unit = tile_inches / max(width, height)
    gap = 0.12 * max(width, height)
    band = (title_lines * fontsize * 1.25 / 72 + 0.04) / unit
    cell_width, cell_height = width + gap, height + band + gap
    grid_width, grid_height = columns * cell_width - gap, rows * cell_height - gap
    left, right = 0.1, (1.3 if colorbar_label else 0.1)
    top, bottom = 0.45, 0.1  # the heading above; below, nothing
    figure = Figure(figsize=(grid_width * unit + left + right, grid_height * unit + top + bottom))
    size = figure.get_size_inches()
    axes = figure.add_axes((left / size[0], bottom / size[1], grid_width * unit / size[0], grid_height * unit / size[1]))
    axes.axis("off")
    for index, (tile, title) in enumerate(zip(maps, titles)):
        row, column = divmod(index, columns)
        x, y = column * cell_width, row * cell_height + band
        image = axes.imshow(tile, extent=(x, x + width, y + height, y), interpolation="nearest", **image_options)
        axes.text(x + width / 2, y - 0.02 / unit, title, ha="center", va="bottom", fontsize=fontsize)
    axes.set_xlim(0, grid_width)  # after imshow, which sets the limits to its own extent
    axes.set_ylim(grid_height, 0)
    if colorbar_label:
        bar = figure.add_axes((1 - (right - 0.25) / size[0], 0.15, 0.18 / size[0], 0.7))
        figure.colorbar(image, cax=bar, label=colorbar_label)
    figure.suptitle(heading, y=1 - 0.08 / size[1], va="top")
    return figure


def learning_curves(epochs: list[int], logs: list[dict], objective: str, title: str) -> Figure:
    """Loss and the objective's metric per epoch, training against validation."""
    metric = objective.removeprefix("val_")
    figure = Figure(figsize=(9, 3.6))
    _margins(figure, left=0.75, right=0.15, bottom=0.55, top=0.75, wspace=0.85, columns=2)
    first = logs[0] if logs else {}
    # A model with losses of its own instead of one (a GAN's discriminator and generator) has
    # each drawn; it has no validation loss.
    own = [key for key in first if key.endswith("_loss") and not key.startswith("val_")]
    loss_lines = ([(key, key.removesuffix("_loss"), "o-") for key in own] if own and "loss" not in first
                  else [("loss", "train", "o-"), ("val_loss", "validation", "s-")])
    lines = {"loss": loss_lines, metric: [(metric, "train", "o-"), (objective, "validation", "s-")]}
    for axes, name in zip(figure.subplots(1, 2), ("loss", metric)):
        for key, label, style in lines[name]:
            values = [entry.get(key, np.nan) for entry in logs]
            if np.isfinite(np.asarray(values, dtype=float)).any():
                axes.plot(epochs, values, style, label=label)
        axes.set(xlabel="epoch", ylabel=name)
        axes.set_title(name, y=TITLE_Y)
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend()
        else:  # a trial whose loss went NaN in its first epoch
            axes.text(0.5, 0.5, f"no finite {name} in any epoch", transform=axes.transAxes, ha="center", color="crimson")
    figure.suptitle(title)
    return figure


def fits_curves(curves: dict, objective: str, title: str) -> Figure:
    """A trial of several fits (K folds, repeats): each fit's loss and objective per epoch, its
    training line dashed and its validation line solid in one colour, labelled "fold2" etc."""
    metric = objective.removeprefix("val_")
    figure = Figure(figsize=(9, 3.6))
    _margins(figure, left=0.75, right=0.15, bottom=0.55, top=0.75, wspace=0.85, columns=2)
    for axes, name in zip(figure.subplots(1, 2), ("loss", metric)):
        for number, (label, epoch_logs) in enumerate(curves.items()):
            epochs = [epoch for epoch, _logs in epoch_logs]
            colour = f"C{number % 10}"
            for key, style, shown in ((name, "--", None), (f"val_{name}", "-", label.strip("/"))):
                values = [logs.get(key, np.nan) for _epoch, logs in epoch_logs]
                if np.isfinite(np.asarray(values, dtype=float)).any():
                    axes.plot(epochs, values, style, color=colour, label=shown)
        axes.set(xlabel="epoch", ylabel=name)
        axes.set_title(f"{name} (dashed: training)", y=TITLE_Y)
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend(fontsize="small")
    figure.suptitle(title)
    return figure


def confusion_counts(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """counts[true, predicted]."""
    counts = np.zeros((classes, classes), dtype=int)
    np.add.at(counts, (labels.astype(int), predicted.astype(int)), 1)
    return counts


def confusion_matrix(labels: np.ndarray, probabilities: np.ndarray, title: str) -> Figure:
    """Counts of true class (rows) against predicted class (columns), each cell written out."""
    classes = probabilities.shape[1]
    counts = confusion_counts(labels, probabilities.argmax(axis=1), classes)
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    figure = Figure(figsize=(6.4, 5.6))
    _margins(figure, left=0.65, right=0.15, bottom=0.6, top=0.4)
    axes = figure.subplots()
    # Log-like colours: the diagonal would wash out every mistake on a linear scale.
    image = axes.imshow(np.log1p(counts), cmap="Blues")
    for (row, column), count in np.ndenumerate(counts):
        if count:
            dark = image.norm(np.log1p(count)) > 0.6
            axes.text(column, row, str(count), ha="center", va="center", fontsize=8,
                      color="white" if dark else ("black" if row == column else "crimson"))
    axes.set(xticks=range(classes), yticks=range(classes), xlabel="predicted", ylabel="true")
    axes.set_title(f"{title}: {len(labels)} test images, accuracy {accuracy:.4f}", y=TITLE_Y)
    return figure


def worst_misclassified(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, title: str,
                        count: int = 25, pixel_max: float = 1.0) -> Figure:
    """The test images the model got wrong most confidently, with true and predicted class;
    `pixel_max` is the images' white (the digits' 16)."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")][:count]
    mistakes = int((predicted != labels).sum())
    which = f"all {mistakes} mistakes" if len(wrong) == mistakes else f"the {len(wrong)} most confident of {mistakes} mistakes"
    heading = f"{title}: {which} on {len(labels)} test images, most confident first"
    if not len(wrong):
        figure = Figure(figsize=(9.5, 1.2))
        figure.text(0.02, 0.3, "no test image misclassified", fontsize=12)
        figure.suptitle(heading)
        return figure
    tiles = [images[index].squeeze() for index in wrong]
    titles = [f"true {labels[index]}  pred {predicted[index]}\np={probabilities[index, predicted[index]]:.2f}"
              for index in wrong]
    return _tiles(tiles, titles, columns=5, tile_inches=1.7, title_lines=2, fontsize=9, heading=heading,
                  cmap="gray_r", vmin=0, vmax=pixel_max)


def first_weight_layer(model):
    """The first layer with a kernel: a Dense or a Conv2D (augmentation and flattening have none),
    looked for inside a nested model too (a fine-tune's source body comes before its new head)."""
    return _first_weight_layer(model)[0]


def _first_weight_layer(model):
    """(the first layer with a kernel, the model whose input it reads)."""
    for layer in model.layers:
        if hasattr(layer, "layers"):  # a model inside the model
            try:
                return _first_weight_layer(layer)
            except ValueError:
                continue
        if getattr(layer, "kernel", None) is not None:
            return layer, model
    raise ValueError(f"model {model.name} has no layer with weights")


def first_layer_weights(model, title: str) -> Figure:
    """The first layer's weights as images on a diverging colour map centred on 0: a map of the
    input's shape per dense unit (for softmax regression, one per class), or each convolution
    kernel (the input channels side by side)."""
    layer, model = _first_weight_layer(model)
    kernel = np.asarray(layer.kernel)
    input_shape = tuple(model.input_shape[1:])
    if kernel.ndim == 2:  # dense: (inputs, units), inputs the flattened image
        units = kernel.shape[1]
        height, width = input_shape[:2]
        # A map per unit; colour channels, where the input has them, averaged.
        maps = kernel.T[:MOST_MAPS].reshape(-1, height, width, *input_shape[2:]).mean(axis=tuple(range(3, 1 + len(input_shape))))
        is_output = units == model.output_shape[-1] and layer is model.layers[-1]
        names = [f"class {unit}" if is_output else f"unit {unit}" for unit in range(len(maps))]
        what = f"a map per class ({units}), no hidden layer" if is_output else f"{layer.name}: {units} units"
        if units > len(maps):
            what += f" (first {len(maps)} drawn)"
    else:  # convolution: (height, width, in channels, filters), the channels laid side by side
        filters = kernel.shape[-1]
        maps = np.concatenate([kernel[:, :, channel, :] for channel in range(kernel.shape[2])], axis=1)
        maps = np.moveaxis(maps, -1, 0)[:MOST_MAPS]
        names = [f"{unit}" for unit in range(len(maps))]
        what = f"{layer.name}: {filters} kernels {kernel.shape[0]}x{kernel.shape[1]}"
        if filters > len(maps):
            what += f" (first {len(maps)} drawn)"
    limit = float(np.abs(maps).max()) or 1.0
    columns = min(len(maps), 5 if len(maps) <= 10 else 8)
    return _tiles(list(maps), names, columns=columns, tile_inches=1.3, title_lines=1, fontsize=8,
                  heading=f"{title}: first-layer weights, {what}", colorbar_label="weight (red +, blue -)",
                  cmap=WEIGHT_COLOURS, vmin=-limit, vmax=limit)


SAMPLE_GRID = 64  # generated images drawn in one sample grid: 8 rows of 8


def sample_grid(images: np.ndarray, pixel_max: float, title: str, columns: int = 8) -> Figure:
    """Generated grey images side by side, `columns` to a row, drawn as the data's images are
    (white on black, 0 to `pixel_max`), in one mosaic with grey gaps between them."""
    images = np.asarray(images, dtype=float).reshape(len(images), *np.shape(images)[1:3])
    count, height, width = images.shape
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    gap = max(1, height // 14)
    mosaic = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap), 0.5 * pixel_max)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        mosaic[row * (height + gap): row * (height + gap) + height, column * (width + gap): column * (width + gap) + width] = image
    tile_inches = 0.55
    width_inches, height_inches = columns * tile_inches + 0.2, rows * tile_inches + 0.5
    figure = Figure(figsize=(width_inches, height_inches))
    axes = figure.add_axes((0.1 / width_inches, 0.1 / height_inches, columns * tile_inches / width_inches,
                            rows * tile_inches / height_inches))
    axes.imshow(mosaic, cmap="gray", vmin=0, vmax=pixel_max, interpolation="nearest")
    axes.axis("off")
    figure.suptitle(title, fontsize=9, y=1 - 0.08 / height_inches, va="top")
    return figure


def objective_by_trial(table: pd.DataFrame, task, title: str) -> Figure:
    """Each trial's best objective (the task's) in the order the trials ran, and the best so far
    as the task ranks them."""
    best = task.best_key
    # A trial run again after an interruption has a KILLED run and a FINISHED one: one point, the latter.
    ordered = (table.assign(_order=pd.to_numeric(table["trial"], errors="coerce"), _finished=table["status"] == "FINISHED")
               .sort_values(["_order", "_finished"]).drop_duplicates("trial", keep="last"))
    numbers = np.arange(1, len(ordered) + 1)
    scores = ordered[best].to_numpy(dtype=float)
    figure = Figure(figsize=(7, 3.8))
    _margins(figure, left=0.8, right=0.15, bottom=0.55, top=0.35)
    axes = figure.subplots()
    finished = ordered["status"].to_numpy() == "FINISHED"
    axes.plot(numbers[finished], scores[finished], "o", label="trial")
    if (~finished).any():
        # Failed trials sit at the worst score drawn, where they cannot pass for good ones.
        worst = np.nanmin if task.higher_is_better else np.nanmax
        low = worst(scores) if np.isfinite(scores).any() else 0.0
        axes.plot(numbers[~finished], np.full((~finished).sum(), low), "x", color="crimson", label="failed / killed")
    axes.step(numbers, task.running_best(scores), where="post", color="black", alpha=0.6, label="best so far")
    axes.set(xlabel="trial (in the order run)", ylabel=best)
    axes.set_title(title, y=TITLE_Y)
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    return figure


def hyperparameters_vs_objective(table: pd.DataFrame, objective: str, domains: dict, title: str) -> Figure:
    """One small panel per searched hyperparameter: its value in each trial against the trial's
    best objective, over the whole declared domain. `domains` maps each name to a list of the
    values it may take (choices) or to (low, high, log) for a range."""
    best = f"best_{objective}"
    names = [name for name in domains if name in table.columns]
    columns = min(len(names), 4) or 1
    rows = max(1, math.ceil(len(names) / columns))
    figure = Figure(figsize=(3.2 * columns, 2.7 * rows + 0.4))
    _margins(figure, left=0.8, right=0.15, bottom=0.45, top=0.75, wspace=0.2, hspace=0.55, columns=columns, rows=rows)
    grid = figure.subplots(rows, columns, squeeze=False, sharey=True).ravel()
    for axes in grid[len(names):]:
        axes.axis("off")
    for axes, name in zip(grid, names):
        present = table[[name, best]].dropna()
        domain = domains[name]
        if isinstance(domain, tuple):  # a range: a numeric axis, logarithmic where it was sampled so
            low, high, log = domain
            axes.plot(present[name].astype(float), present[best], "o", alpha=0.75)
            # A range fixed to one value ([space] x = [v, v]) still gets an axis around it.
            margin = (high / low) ** 0.05 if log else (high - low) * 0.05 or abs(low) * 0.05 or 0.05
            if log and margin == 1:
                margin = 1.05
            axes.set_xlim((low / margin, high * margin) if log else (low - margin, high + margin))
            if log:
                axes.set_xscale("log")
            elif isinstance(low, int) and isinstance(high, int):  # layer counts, units: whole ticks
                axes.xaxis.get_major_locator().set_params(integer=True)
        else:  # choices: one position each, in the declared order
            positions = [_position(value, domain) for value in present[name]]
            axes.plot(positions, present[best], "o", alpha=0.75)
            axes.set_xticks(range(len(domain)), [str(value) for value in domain])
            axes.set_xlim(-0.5, len(domain) - 0.5)
        inactive = int(table[name].isna().sum())  # a conditional one, in trials where it did not apply
        axes.set_title(name + (f" (not in {counted(inactive, 'trial')})" if inactive else ""),
                       fontsize=10, y=TITLE_Y)
        axes.grid(alpha=0.3)
    for axes in grid[::columns]:
        axes.set_ylabel(best)
    figure.suptitle(title)
    return figure


def forecast_against_actual(times: np.ndarray | None, actual: np.ndarray, forecast: np.ndarray,
                            baselines: dict, title: str, units: str = "") -> Figure:
    """The forecast over the test period against what happened, with the naive forecasts for
    reference, and the error per step below it."""
    actual, forecast = np.ravel(actual), np.ravel(forecast)
    x = times if times is not None else np.arange(len(actual))
    figure = Figure(figsize=(10, 5.6))
    _margins(figure, left=0.85, right=0.15, bottom=0.55, top=0.45, hspace=0.35, rows=2)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[2.2, 1])
    top.plot(x, actual, color="black", linewidth=1.4, label="actual")
    for name, values in baselines.items():
        top.plot(x, np.ravel(values), linewidth=0.8, alpha=0.6, linestyle="--", label=name.replace("_", " "))
    top.plot(x, forecast, color="tab:red", linewidth=1.1, label="model")
    top.set(ylabel=f"value{f' ({units})' if units else ''}")
    top.set_title(title, y=TITLE_Y)
    top.grid(alpha=0.3)
    top.legend(loc="upper left", fontsize=8)
    bottom.plot(x, forecast - actual, color="tab:red", linewidth=0.9)
    bottom.axhline(0, color="black", linewidth=0.6)
    bottom.set(xlabel="time of the target" if times is not None else "test sample", ylabel="model - actual")
    bottom.grid(alpha=0.3)
    return figure


def predicted_against_actual(actual: np.ndarray, predicted: np.ndarray, title: str) -> Figure:
    """Each test example's prediction against its true value: on the diagonal when right."""
    actual, predicted = np.ravel(actual), np.ravel(predicted)
    figure = Figure(figsize=(5.6, 5.2))
    _margins(figure, left=0.8, right=0.2, bottom=0.6, top=0.45)
    axes = figure.subplots()
    axes.scatter(actual, predicted, s=12, alpha=0.6, color="tab:red")
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    axes.plot([low, high], [low, high], color="black", linewidth=0.8, label="prediction = actual")
    axes.set(xlabel="actual", ylabel="predicted")
    axes.set_title(title, y=TITLE_Y)
    axes.legend(loc="upper left", fontsize=8)
    axes.grid(alpha=0.3)
    return figure


def residual_histogram(actual: np.ndarray, forecast: np.ndarray, title: str) -> Figure:
    """How the model's errors on the test split are spread: centred on 0 when unbiased."""
    residuals = np.ravel(forecast) - np.ravel(actual)
    figure = Figure(figsize=(7.6, 4.2))
    _margins(figure, left=0.75, right=0.15, bottom=0.6, top=0.45)
    axes = figure.subplots()
    axes.hist(residuals, bins=min(40, max(5, len(residuals) // 8)), color="tab:red", alpha=0.75)
    axes.axvline(0, color="black", linewidth=0.8)
    rmse, bias = float(np.sqrt(np.mean(residuals**2))), float(np.mean(residuals))
    axes.set(xlabel="model - actual", ylabel="test samples")
    axes.set_title(f"{title}: RMSE {rmse:.4g}, mean error {bias:+.3g}", y=TITLE_Y)
    axes.grid(alpha=0.3)
    return figure


def _position(value, choices: list) -> float:
    """Where a logged value (MLflow gives text, pandas may make it a float) sits among the
    declared choices: 64.0 is the choice 64, "True" the choice True."""
    for index, choice in enumerate(choices):
        if str(value) == str(choice):
            return index
        try:
            if not isinstance(choice, (bool, str)) and float(value) == float(choice):
                return index
        except (TypeError, ValueError):
            pass
    return np.nan
