"""What transfer buys: `python -m nnlab.finetune` against training from scratch, on few labels.

    python benchmarks/finetune_transfer.py                   # everything below, ~25 min on 2 cores
    python benchmarks/finetune_transfer.py --keep /tmp/xfer  # in a folder you keep (or reuse)

In a folder of its own (its own tuning/ and mlruns/):
1. the sources: the default `python -m nnlab.search mnist` (registered mnist-cnn) and
   `python -m nnlab.search experiments/mnist-0-4.toml` (MNIST digits 0-4 only, mnist-0-4-cnn),
   each skipped when the folder already holds its champion;
2. `python -m nnlab.finetune mnist-cnn digits --labels-per-class 10`, timed as a user runs it;
3. every strategy on the same labels, seeds 1-3: mnist-cnn -> digits at 10 and 50 labels per
   class, and mnist-0-4-cnn -> MNIST digits 5-9 (experiments/mnist-5-9.toml) at 10; each run
   as the command configures it, in this process, its test accuracy read from what it logged;
4. what a fine-tune takes of an average champion (the default search's mnist-cnn is one): its best
   member's body (`--source-members best`) against all members' side by side (`all`, the
   default), fine-tune, feature extraction and scratch, 10 labels per class, seeds 1-3
   (alone: `--members-only`);
5. `python -m nnlab.finetune mnist-cnn digits --labels-per-class 10 --search`, timed, its
   champion against the best strategy's mean; then the same search for the other seeds, each
   with what it registered and both candidates' test accuracy (the best trial, the average).
Prints markdown tables: mean test accuracy over the seeds (each seed's after it) and seconds.

    python benchmarks/finetune_transfer.py --keep /tmp/xfer --folds 5   # issue 32's before and after

`--folds K`: only the default search (if the folder lacks mnist-cnn) and `--search` at 10 labels
per class for each seed, as it is (one validation split, 144 digits) and with `--cross-validation
K` (each trial scored on K folds of the 100 training and 144 validation digits, its members refit
on all 244), each with its registered champion's test accuracy and seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from search_command import REPOSITORY, latest_search_run, run_search_command

STRATEGIES = ("feature-extraction", "fine-tune", "full", "scratch")


def champion_exists(name: str) -> bool:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if not Path("mlruns/mlflow.db").is_file():
        return False
    try:
        MlflowClient("sqlite:///mlruns/mlflow.db").get_model_version_by_alias(name, "champion")
        return True
    except MlflowException:
        return False


def one_finetune(source: str, target: str, strategy: str, labels: int, seed: int, extra=()) -> tuple[float, float]:
    """(its SearchResult, seconds) of one fine-tune, configured as the command does: a fixed
    strategy, or "search" for --search; `extra`: more of the command's flags."""
    from nnlab.data import load_dataset
    from nnlab.finetune import finetune_config, parse_args
    from nnlab.search import run_search

    started = time.monotonic()
    how = ["--search"] if strategy == "search" else ["--strategy", strategy]
    config = finetune_config(parse_args([source, target, *how, "--labels-per-class", str(labels),
                                         "--seed", str(seed), *extra]))
    dataset = load_dataset(config.dataset, config.data, data_dir=config.data_dir, seed=config.seed,
                           validation_fraction=config.validation_fraction)
    result = run_search(config, dataset, fresh=True, echo=lambda _line: None)
    return result, time.monotonic() - started


def table(source: str, target: str, labels: int, seeds: list[int]) -> dict:
    print(f"\n{source} -> {target}, {labels} labels per class, seeds {', '.join(map(str, seeds))}\n")
    print("| strategy | mean test accuracy | each seed | seconds per run |")
    print("| --- | ---: | --- | ---: |")
    means = {}
    for strategy in STRATEGIES:
        runs = [one_finetune(source, target, strategy, labels, seed) for seed in seeds]
        accuracies = [result.test_metrics["test_accuracy"] for result, _ in runs]
        means[strategy] = statistics.mean(accuracies)
        print(f"| {strategy} | {means[strategy]:.4f} | {' '.join(f'{value:.3f}' for value in accuracies)} | "
              f"{statistics.mean(seconds for _, seconds in runs):.0f} |", flush=True)
    best = max((strategy for strategy in STRATEGIES if strategy != "scratch"), key=means.get)
    print(f"\nbest: {best}, {100 * (means[best] - means['scratch']):+.1f} points over scratch")
    return means


def members_table(labels: int, seeds: list[int]) -> None:
    """mnist-cnn, an average champion, -> digits: its best member's body against all members'."""
    print(f"\nmnist-cnn (an average) -> digits, {labels} labels per class, seeds {', '.join(map(str, seeds))}\n")
    print("| strategy | source members | mean test accuracy | each seed | seconds per run |")
    print("| --- | --- | ---: | --- | ---: |")
    for strategy, members in [(strategy, members) for strategy in ("fine-tune", "feature-extraction", "scratch")
                              for members in ("best", "all")]:
        runs = [one_finetune("mnist-cnn", "digits", strategy, labels, seed, ("--source-members", members))
                for seed in seeds]
        accuracies = [result.test_metrics["test_accuracy"] for result, _ in runs]
        print(f"| {strategy} | {members} | {statistics.mean(accuracies):.4f} | "
              f"{' '.join(f'{value:.3f}' for value in accuracies)} | "
              f"{statistics.mean(seconds for _, seconds in runs):.0f} |", flush=True)


def folds_table(folds: int, seeds: list[int], folds_only: bool = False) -> None:
    """--search at 10 labels per class, one validation split against K folds and the refit."""
    print(f"\nmnist-cnn -> digits, --search, 10 labels per class, seeds {', '.join(map(str, seeds))}\n")
    print("| --search | seed | registered | test accuracy | refit | chosen on validation | seconds |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    ways = [("one validation split", ()), (f"--cross-validation {folds}", ("--cross-validation", str(folds)))]
    for how, extra in ways[1:] if folds_only else ways:
        accuracies = []
        for seed in seeds:
            result, seconds = one_finetune("mnist-cnn", "digits", "search", 10, seed, extra)
            values = result.test_metrics
            accuracies.append(values["test_accuracy"])
            refit, chosen = values.get("test_accuracy_refit"), values.get("test_accuracy_validation_chosen")
            print(f"| {how} | {seed} | {result.champion_trial} | {values['test_accuracy']:.4f} | "
                  f"{'' if refit is None else f'{refit:.4f}'} | {'' if chosen is None else f'{chosen:.4f}'} | "
                  f"{seconds:.0f} |", flush=True)
        print(f"| {how} | mean | | **{statistics.mean(accuracies):.4f}** | | | |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="run in this folder instead of a temporary one (reused if there)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--members-only", action="store_true", help="the default search, the README's fine-tune "
                        "and the table of what is taken of an average champion, nothing else")
    parser.add_argument("--folds", type=int, help="only --search at 10 labels per class, with and without "
                        "--cross-validation FOLDS, each seed")
    parser.add_argument("--folds-only", action="store_true", help="--folds: only the cross-validated searches")
    args = parser.parse_args()
    split_source = str(REPOSITORY / "experiments" / "mnist-0-4.toml")
    split_target = str(REPOSITORY / "experiments" / "mnist-5-9.toml")

    folder = args.keep or Path(tempfile.mkdtemp(prefix="nnlab-bench-transfer-"))
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)  # the store read back and the in-process fine-tunes' tuning/ are the folder's
    sys.path.insert(0, str(REPOSITORY))
    sources = (("mnist", "mnist-cnn"),) if args.members_only or args.folds else (("mnist", "mnist-cnn"), (split_source, "mnist-0-4-cnn"))
    for experiment, name in sources:
        if champion_exists(name):
            print(f"source {name}: already in {folder}")
            continue
        _, seconds = run_search_command([experiment], folder, "", log=f"search-{name}.log")
        if seconds is None:
            return 1
        print(f"source {name}: python -m nnlab.search {Path(experiment).name} took {seconds / 60:.1f} min", flush=True)

    if args.folds:
        folds_table(args.folds, args.seeds, args.folds_only)
        return 0
    _, seconds = run_search_command(["mnist-cnn", "digits", "--labels-per-class", "10"], folder, "",
                                    module="nnlab.finetune", log="finetune.log")
    if seconds is None:
        return 1
    print(f"python -m nnlab.finetune mnist-cnn digits --labels-per-class 10: {seconds / 60:.1f} min "
          f"(output in {folder / 'finetune.log'})", flush=True)

    members_table(10, args.seeds)
    if args.members_only:
        return 0
    digits_10 = table("mnist-cnn", "digits", 10, args.seeds)
    table("mnist-cnn", "digits", 50, args.seeds)
    table("mnist-0-4-cnn", split_target, 10, args.seeds)

    _, seconds = run_search_command(["mnist-cnn", "digits", "--labels-per-class", "10", "--search", "--fresh"],
                                    folder, "", module="nnlab.finetune", log="finetune-search.log")
    if seconds is None:
        return 1
    latest = latest_search_run("digits", "transfer")
    metrics = latest.data.metrics
    best = max((strategy for strategy in STRATEGIES if strategy != "scratch"), key=digits_10.get)
    print(f"\npython -m nnlab.finetune mnist-cnn digits --labels-per-class 10 --search: {seconds / 60:.1f} min, "
          f"champion (trial {latest.data.tags.get('nnlab.champion_trial')}) test accuracy {metrics['test_accuracy']:.4f} "
          f"against {digits_10[best]:.4f}, the best strategy's mean ({best})", flush=True)
    # The same search with the other seeds, for a mean beside the strategies' means: what it
    # registered, and both candidates (the best trial alone, the average of the best three).
    print("\n| --search | registered | trials | test accuracy | best trial alone | average of the best 3 |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    rows = [(1, metrics, latest.data.tags.get("nnlab.champion_trial"))]
    for seed in args.seeds:
        if seed != 1:
            result, _ = one_finetune("mnist-cnn", "digits", "search", 10, seed)
            rows.append((seed, result.test_metrics, result.champion_trial))
    for seed, values, trials in rows:
        registered = "average" if "," in trials else "best alone"
        print(f"| seed {seed} | {registered} | {trials} | {values['test_accuracy']:.4f} | "
              f"{values['test_accuracy_single']:.4f} | {values['test_accuracy_ensemble']:.4f} |")
    accuracies = [values["test_accuracy"] for _, values, _ in rows]
    print(f"--search over seeds {', '.join(str(seed) for seed, _, _ in rows)}: mean test accuracy "
          f"{statistics.mean(accuracies):.4f} ({' '.join(f'{value:.3f}' for value in accuracies)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
