"""The trial engine against a plain torchvision pipeline, on the same model, recipe and images.

resnet-20 + eca (k = 3) on Fashion-MNIST (the synthetic set, with a notice, when it is not found):
``ecasweep.train.run_trial`` (device-resident uint8 data augmented a batch at a time, channels_last)
against a Dataset of PIL images with RandomCrop(28, padding=2), RandomHorizontalFlip, ToTensor,
Normalize, a DataLoader and the model in NCHW. Training images/s of each, the ratio (median over
interleaved pairs), and both final test accuracies. The same as ``ecasweep bench engine``, with the
sizes as options.

Example:
    python benchmarks/bench_engine.py --quick
    python benchmarks/bench_engine.py --subset 8000 --epochs 2 --repeats 3 --json engine.json
"""

from __future__ import annotations

import argparse
import json

from ecasweep.bench import bench_engine, quick_settings, render


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subset", type=int, default=2000, help="training images (stratified)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved (engine, pipeline) pairs")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads [default: 1, as a sweep worker]")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers of the pipeline")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST's directory [default: ecasweep's search]")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    kwargs = dict(subset=args.subset, epochs=args.epochs, batch_size=args.batch_size, repeats=args.repeats,
                  threads=args.threads, num_workers=args.num_workers, data_dir=args.data_dir)
    if args.quick:
        kwargs.update(quick_settings()["engine"])
    results = bench_engine(device=args.device, **kwargs)
    render({"engine": results})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
