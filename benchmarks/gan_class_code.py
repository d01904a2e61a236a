"""The GAN's class code against a plain DCGAN: the same generator and discriminator (the search's
defaults), the same data, seed and steps, trained with `class_code` on and off, and judged after
every 10 epochs by the independent classifier of gan_mnist.py (plain Keras, trained on the
official 10,000 test images that neither GAN sees).

    python benchmarks/gan_class_code.py [--epochs 30] [--classifier-data ../shared/data/mnist] [--out DIR]

Prints one row per (variant, epoch): seconds of training so far; the Frechet distance between
1,000 generated images and the 400 validation images in the independent classifier's features;
how many digits the classifier finds among the generated images, and its mean confidence. The
sample grids go to --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gan_mnist import CLASSIFIER_DATA, independent_classifier

SAMPLES = 1000
SEED = 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--classifier-data", type=Path, default=CLASSIFIER_DATA)
    parser.add_argument("--out", type=Path, default=Path("gan-class-code"))
    args = parser.parse_args()
    import keras
    import keras_tuner
    import numpy as np

    from nnlab import plots
    from nnlab.data import load_mnist
    from nnlab.models.gan import build
    from nnlab.quality import Judge

    dataset = load_mnist(seed=SEED)
    for notice in dataset.notices:
        print(notice)
    classifier, real_accuracy, real_confidence = independent_classifier(args.classifier_data)
    judge = Judge(classifier)
    real_features = judge.look(dataset.validation[0])[0]
    print(f"independent classifier on the 5,000 shipped real images: accuracy {real_accuracy:.4f}, "
          f"mean confidence {real_confidence:.3f}")
    args.out.mkdir(parents=True, exist_ok=True)
    print("| class code | epochs | training s | FID (independent features) | digits covered | mean confidence |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for code in (False, True):
        hp = keras_tuner.HyperParameters()
        hp.Fixed("class_code", code)
        keras.utils.set_random_seed(SEED)
        gan = build(hp, dataset.spec)
        # The search's defaults (nnlab/models/gan.py): Adam at 2e-4 with beta_1 0.5 for both.
        gan.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
        latent = np.random.default_rng(2026).normal(size=(SAMPLES, gan.latent_dim)).astype("float32")
        seconds = 0.0
        for epoch in range(10, args.epochs + 1, 10):
            started = time.monotonic()
            gan.fit(*dataset.train, batch_size=32, initial_epoch=epoch - 10, epochs=epoch, verbose=0)
            seconds += time.monotonic() - started
            images = gan.average_generator.predict(latent, verbose=0)  # what nnlab scores and registers
            scores = judge.scores(real_features, images)
            print(f"| {'on' if code else 'off'} | {epoch} | {seconds:.0f} | {scores['fid_mnist']:.2f} | "
                  f"{scores['coverage']} | {scores['confidence']:.3f} |", flush=True)
            grid = plots.sample_grid(images[:64], 1.0, f"class code {'on' if code else 'off'}, epoch {epoch}")
            (args.out / f"class_code_{'on' if code else 'off'}_epoch_{epoch}.png").write_bytes(plots.png(grid))
    return 0


if __name__ == "__main__":
    sys.exit(main())
