"""One or two 3x3 convolutions per block of the default CNN, trained long, side by side.

    python benchmarks/cnn_blocks.py --data-dir ../shared/data/mnist [--epochs 30]

The builders' default CNN (every other hyperparameter at its default) with `convs_per_block`
1 and 2, each built and trained by nnlab's hypermodel on the 4,500 training images (seed 1)
for --epochs with the learning rate halved when the validation loss stalls for two epochs,
no early stopping; scored on the test split (the official 10,000 with --data-dir) every 5
epochs. Prints one markdown table: test accuracy by epoch, seconds per epoch, parameters.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="MNIST files; the t10k pair is the test set")
    parser.add_argument("--epochs", type=int, default=30, help="epochs per model (default 30)")
    args = parser.parse_args()

    import keras
    import keras_tuner

    from nnlab.data import load_dataset
    from nnlab.hypermodel import SearchHyperModel
    from nnlab.models import get_builder

    dataset = load_dataset("mnist", data_dir=str(args.data_dir) if args.data_dir else None, seed=1,
                           validation_fraction=0.1)
    images, labels = dataset.test
    checkpoints = list(range(5, args.epochs + 1, 5))
    rows = []
    for convolutions in (1, 2):
        keras.backend.clear_session()
        keras.utils.set_random_seed(1)
        hp = keras_tuner.HyperParameters()
        hp.Fixed("convs_per_block", convolutions)
        hypermodel = SearchHyperModel(get_builder("cnn"), dataset.spec, 128, patience=args.epochs)
        model = hypermodel.build(hp)
        scores = {}

        def score(epoch, _logs):
            if epoch + 1 in checkpoints:
                scores[epoch + 1] = float((model.predict(images, batch_size=256, verbose=0).argmax(axis=1) == labels).mean())

        started = time.perf_counter()
        hypermodel.fit(hp, model, *dataset.train, validation_data=dataset.validation, epochs=args.epochs, verbose=0,
                       callbacks=[keras.callbacks.ReduceLROnPlateau("val_loss", factor=0.5, patience=2),
                                  keras.callbacks.LambdaCallback(on_epoch_end=score)])
        seconds = time.perf_counter() - started
        rows.append((convolutions, model.count_params(), seconds / args.epochs, scores))
        print(f"convs_per_block {convolutions}: {scores}", flush=True)

    print(f"\n{len(dataset.train[0])} train images, {len(labels)} test images; {time.strftime('%Y-%m-%d')}\n")
    print("| convolutions per block | parameters | s / epoch (test passes included) | "
          + " | ".join(f"test accuracy, epoch {epoch}" for epoch in checkpoints) + " |")
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in checkpoints) + " |")
    for convolutions, params, epoch_seconds, scores in rows:
        print(f"| {convolutions} | {params:,} | {epoch_seconds:.1f} | "
              + " | ".join(f"{scores[epoch]:.4f}" for epoch in checkpoints) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
