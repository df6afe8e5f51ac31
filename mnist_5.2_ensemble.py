r"""Lesson 5.2: several trained networks vote: an ensemble. About 99.65% with three of 5.1's.

A network's mistakes are partly its own: trained from other random weights, on batches in
another order (another --seed), the same architecture misreads some other digits. Averaging
several networks' probabilities keeps what they agree on and dilutes what each one gets
wrong alone, so the average is right more often than any of them (the committees of
networks that held the MNIST records did this). It costs no training of its own: the
members are networks that lessons 5.0 and 5.1 already trained and saved, loaded from their
SavedModels as predict.py does; what it costs is reading each digit once per member.

    for seed in 0 1 2 3 4; do
        python mnist_5.1_batchnorm_convolutional_averaged.py --seed $seed \
            --save-model models/ensemble/5.1-seed-$seed
    done
    python mnist_5.2_ensemble.py                      # every model in models/ensemble/
    python mnist_5.2_ensemble.py models/a models/b    # or these

It prints each member's test accuracy, then the ensemble's as members are added one by one:
watch what each added member changes. Networks as good and as alike as 5.1's leave little
to gain: a few hundredths of a percent, and a second member can even cost a little.

    image X [batch, 28, 28]
      |-> member 1 -> probabilities P1 [batch, 10]
      |-> member 2 -> probabilities P2 [batch, 10]        P = (P1 + P2 + ... + Pn) / n
      |   ...                                             answer = argmax(P)
      '-> member n -> probabilities Pn [batch, 10]
"""

import sys
from pathlib import Path

import plumbing  # the lab's folders, flags and one-line errors
from plumbing import UserError

FOLDER = plumbing.MODELS / "ensemble"  # where the members are, by default


def parse_args(argv=None):
    parser = plumbing.ArgumentParser(prog="mnist_5.2_ensemble.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", metavar="MODEL",
                        help="the members: folders of models saved by the lessons "
                             f"(default: every one in {FOLDER})")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="folder with the four MNIST files (as the lessons)")
    parser.add_argument("--save-png", metavar="FILE",
                        help="save the picture of the ensemble's accuracy")
    parser.add_argument("--no-vis", action="store_true",
                        help="no picture, only the printed figures")
    return parser.parse_args(argv)


def members(folders):
    """The members: each folder loaded as predict.py loads a model (one clear line if a
    folder is not a digit model saved by the lab)."""
    import savedmodel

    folders = ([Path(f) for f in folders]
               or sorted(p.parent for p in FOLDER.glob("*/saved_model.pb")))
    if len(folders) < 2:
        raise UserError(f"an ensemble needs at least two models; found {len(folders)} in {FOLDER}: "
                        "train them first (see python mnist_5.2_ensemble.py -h) or name them")
    return [savedmodel.load(folder) for folder in folders]


def vote(models, images):
    """The ensemble's probabilities: the mean of its members', and each member's [n, N, 10]."""
    import numpy as np

    each = np.stack([model(images) for model in models])  # [members, images, 10]
    return each.mean(axis=0), each


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    import mnistdata

    models = members(args.models)
    test = mnistdata.read_data_sets(args.data_dir, reshape=False, validation_size=0).test
    images, digits = test.images[..., 0], test.labels.astype(int)
    _, each = vote(models, images)
    print(f"{len(models)} members, {len(images)} test digits")
    alone = [float(np.mean(probabilities.argmax(1) == digits)) for probabilities in each]
    for model, accuracy in zip(models, alone):
        print(f"  {model.folder}: test accuracy {accuracy:.4f}")
    # The gain of each added member: the vote of the first k members, k = 1, 2, ...
    accuracies = [float(np.mean(each[:k].mean(axis=0).argmax(1) == digits))
                  for k in range(1, len(models) + 1)]
    for k, accuracy in enumerate(accuracies, start=1):
        gain = f" ({accuracy - accuracies[k - 2]:+.4f})" if k > 1 else ""
        print(f"the first {k} together: test accuracy {accuracy:.4f}{gain}")
    print(f"ensemble test accuracy: {accuracies[-1]:.4f}")
    if not args.no_vis or args.save_png:  # (no display: one line; the figures above stay)
        import compare

        if compare.ensemble(accuracies, alone, save_png=args.save_png) == args.save_png:
            print(f"saved {args.save_png}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as error:
        sys.exit(f"error: {error}")
