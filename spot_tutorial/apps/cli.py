"""The `spot` command: argument parsing only; the work is done by the library.

    spot quickstart                                    # both stages on synthetic shapes, CPU, minutes
    spot train --stage 1 --preset coco --data-path /data/coco --output-dir runs/coco_teacher
    spot train --stage 2 --preset coco --data-path /data/coco --teacher runs/coco_teacher/last.pt \\
               --output-dir runs/coco_student
    spot evaluate runs/coco_student/last.pt --data-path /data/coco --eval-permutations all
    spot evaluate coco_spot.pt --data-path /data/coco --num-slots 7    # the authors' file, fp32
    spot segment runs/coco_student/last.pt my_photos/ --out segmented/  # masks for your own images
    spot train --stage 1 --dataset folder --data-path my_photos --init-from coco_spot.pt ...  # fine-tune
    torchrun --nproc_per_node 4 -m spot_tutorial train --stage 1 --preset coco ...   # several GPUs

Every field of `SPOTConfig` is an option (``--num-slots 6``, ``--lr-main 2e-4``,
``--train-permutations 0 5 8``, ``--bf16 / --no-bf16``); given options override the preset.
Stage 2 first applies the paper's student settings (embedding init, bi-level truncation, ViT
blocks >= 8 trained), so they too can be overridden.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from typing import Any, Sequence

from spot_tutorial.config import ORDER_MODES, SPOTConfig
from spot_tutorial.data.registry import DATASETS
from spot_tutorial.recipes import PRESETS, get_preset

CONFIG_PREFIX = "config__"  # argparse dest of the SPOTConfig options


# ----------------------------------------------------------------------------------------------
# SPOTConfig fields as options
def parse_order_spec(values: Sequence[str]) -> str | list[int]:
    """['random'] -> 'random'; ['0', '5', '8'] -> [0, 5, 8] (explicit order ids)."""
    if len(values) == 1 and values[0] in ORDER_MODES:
        return values[0]
    try:
        return [int(v) for v in values]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"patch orders must be one of {ORDER_MODES} or order ids 0..8, got {' '.join(values)!r}") from None


class OrderSpecAction(argparse.Action):
    """``--train-permutations random`` or ``--train-permutations 0 5 8``, checked while parsing."""

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            setattr(namespace, self.dest, parse_order_spec(values))
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentError(self, str(error)) from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def thread_count(text: str) -> int | str:
    """`--threads`: 'auto' or an integer >= 0."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 0, got {text!r}")
    return value


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"key\": 1}}': {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One ``--field-name`` option per SPOTConfig field, typed from the dataclass annotations."""
    group = parser.add_argument_group("configuration (override the preset; see SPOTConfig)")
    hints = typing.get_type_hints(SPOTConfig)
    defaults = SPOTConfig()
    for spec in dataclasses.fields(SPOTConfig):
        name, kind = spec.name, hints[spec.name]
        flag = "--" + name.replace("_", "-")
        options: dict[str, Any] = dict(dest=CONFIG_PREFIX + name, default=argparse.SUPPRESS,
                                       help=f"(COCO default: {getattr(defaults, name)!r})")
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **options)
        elif kind in (int, float, str):
            group.add_argument(flag, type=kind, metavar=kind.__name__.upper(), **options)
        elif kind is dict:
            group.add_argument(flag, type=_json_dict, metavar="JSON", **options)
        else:  # the patch-order specification
            group.add_argument(flag, nargs="+", metavar="ORDER", action=OrderSpecAction, **options)


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The SPOTConfig fields given on the command line, converted to their types."""
    return {key[len(CONFIG_PREFIX):]: value for key, value in vars(args).items()
            if key.startswith(CONFIG_PREFIX)}


def config_from_args(args: argparse.Namespace) -> SPOTConfig:
    """Preset -> (stage 2: the paper's student settings) -> the options given."""
    from spot_tutorial.recipes import student_config

    config = get_preset(args.preset)
    if getattr(args, "stage", 1) == 2:  # the paper's student, and the dataset's stage-2 schedule
        config = student_config(config)
    return config.replace(**config_overrides(args))


# ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spot", description="SPOT (CVPR 2024): object-centric learning with patch-order "
                                 "permutation and self-training.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a stage-1 teacher or a stage-2 student",
                                description="Train one stage of SPOT (run it with torchrun for several GPUs).")
    train.add_argument("--stage", type=int, choices=(1, 2), default=1,
                       help="1: teacher; 2: self-training student (needs --teacher)")
    train.add_argument("--preset", choices=sorted(PRESETS), default="coco",
                       help="a dataset's settings (COCO, VOC: the paper's; MOVi: the authors' released commands); "
                            "'synthetic' runs on the CPU, no data needed")
    train.add_argument("--data-path", help="dataset folder (not needed for --preset synthetic); with "
                                            "--dataset folder, any folder of your images (searched recursively)")
    train.add_argument("--mask-path", help="--dataset folder: instance-mask PNGs parallel to --data-path, for "
                                            "evaluation during training (without them: figures only)")
    train.add_argument("--teacher", help="stage 2: the stage-1 checkpoint (its last.pt, as in the paper)")
    train.add_argument("--init-from", metavar="CHECKPOINT",
                       help="start from the weights of a checkpoint (ours or the authors'): fine-tuning")
    train.add_argument("--output-dir", help="where checkpoints and logs go (default: outputs/<preset>_stage<N>)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --output-dir from its last.pt (exactly where it stopped)")
    train.add_argument("--overwrite", action="store_true", help="start afresh in a folder that holds a run")
    train.add_argument("--device", default="auto", help="auto (GPU if any), cpu, cuda, cuda:1, ...")
    train.add_argument("--encoder-weights", help="local ViT weights file instead of downloading them")
    train.add_argument("--select-by", default=None,
                       help="metric choosing best.pt on the --selection-images held-out training "
                            "images: <slot|decoder>/<fg_ari|mbo_i|mbo_c|miou> (default decoder/mbo_i). "
                            "Without --selection-images there is no model selection: the reported "
                            "model is last.pt, as in the paper")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_config_options(train)
    train.set_defaults(func=cmd_train)

    quick = commands.add_parser("quickstart", help="both stages on synthetic shapes, CPU, a few minutes",
                                description="Train a teacher and a self-trained student on the built-in "
                                            "synthetic dataset and compare them (no downloads).")
    quick.add_argument("--output-dir", default="outputs/quickstart",
                       help="report.json, masks.png and both runs go here (default: outputs/quickstart)")
    quick.add_argument("--minutes", type=float, default=None,
                       help="training minutes of the teacher (default 6; about 9 minutes in all)")
    quick.add_argument("--student-minutes", type=float, default=None,
                       help="training minutes of the student (default 2.5, or in proportion to --minutes)")
    quick.add_argument("--seed", type=int, default=0, help="seed of the weights, data order and noise")
    quick.add_argument("--train-images", type=int, default=0, help="synthetic training images (0: 10000)")
    quick.add_argument("--eval-images", type=int, default=0, help="held-out evaluation images (0: 256)")
    quick.add_argument("--device", default="cpu", help="cpu (the point of the quickstart), or cuda")
    quick.add_argument("--threads", type=thread_count, default="auto",
                       help="torch CPU threads, or auto (default): with prerendered scenes, the faster of "
                            "1 and 2 on this machine, timed at the start; otherwise 1 (0: PyTorch's default)")
    quick.add_argument("--data-workers", type=int, default=None,
                       help="with --no-prerender: processes that render the training images (default: 1 "
                            "when the machine has 2 or more cores, else 0)")
    quick.add_argument("--prerender", action=argparse.BooleanOptionalAction, default=True,
                       help="render the training scenes once before training (about 5 s, 120 MB; the default) "
                            "or, with --no-prerender, again every epoch in --data-workers processes")
    quick.add_argument("--no-progress", action="store_true", help="no progress bars")
    quick.set_defaults(func=cmd_quickstart)

    evaluate = commands.add_parser(
        "evaluate", help="FG-ARI, mBO^i, mBO^c, mIoU of slot and decoder masks on a dataset",
        description="Evaluate a checkpoint (ours, or the authors' .pt file) on COCO, VOC, MOVi or the "
                    "built-in synthetic data; prints a table and writes results.json, results.csv and "
                    "masks.png to --output-dir.")
    evaluate.add_argument("checkpoint", help="last.pt (or best.pt) of `spot train`, or the authors' checkpoint")
    evaluate.add_argument("--dataset", choices=DATASETS, help="default: the dataset in the checkpoint's config; "
                                                               "'folder': your images with --mask-path")
    evaluate.add_argument("--data-path", help="dataset folder (not needed for synthetic)")
    evaluate.add_argument("--mask-path", help="--dataset folder: instance-mask PNGs parallel to the images")
    evaluate.add_argument("--mask-size", type=positive_int, default=None, metavar="PIXELS",
                          help="side of the ground-truth masks the predictions are scored at: 320 for COCO and "
                               "VOC as in the paper (default: the preset's), 224 to compare with later papers")
    evaluate.add_argument("--panoptic", action="store_true",
                          help="COCO: also score against the panoptic ground truth (P-ARI, PQ; FT-DINOSAUR's "
                               "protocol); needs annotations/panoptic_val2017.json and its PNGs")
    evaluate.add_argument("--eval-permutations", default="all", nargs="+", action=OrderSpecAction,
                          metavar="ORDER", help="standard, random, all (the paper's final numbers; "
                                                "default) or order ids 0..8")
    evaluate.add_argument("--encoder", default="vit_base_patch16_224.dino",
                          help="timm ViT of an authors' checkpoint (its weights come from the file)")
    evaluate.add_argument("--num-slots", type=positive_int, default=None, metavar="K",
                          help="slots of a shared-Gaussian model, whose weights do not store the count "
                               "(default: the dataset preset's, e.g. COCO 7, VOC 6, MOVi-C 11, MOVi-E 24); "
                               "an embedding-init model stores its count and refuses another")
    evaluate.add_argument("--bf16", action="store_true",
                          help="bf16 autocast (CUDA or CPU): faster, moves a few argmax labels; default fp32, "
                               "as the authors evaluate")
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--device", default="auto", help="auto (GPU if any), cpu, cuda, ...")
    evaluate.add_argument("--num-workers", type=int, default=4, help="data-loading processes")
    evaluate.add_argument("--max-images", type=int, default=0, help="only the first N images (0: all)")
    evaluate.add_argument("--figure-images", type=int, default=8,
                          help="images in masks.png (0: no figure)")
    evaluate.add_argument("--output-dir", default="outputs/evaluate")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.set_defaults(func=cmd_evaluate)

    seg = commands.add_parser(
        "segment", help="masks for your own images: overlays, label maps, a contact sheet",
        description="Segment images (files, folders searched recursively, or quoted glob patterns; any size "
                    "and mode) with a checkpoint (ours or the authors'). Writes, per image, an overlay PNG and "
                    "a label-map PNG (pixel value = slot id) for each kind of mask, plus contact_sheet.png and "
                    "index.json to --out. Unreadable files are reported and skipped; the exit status is 1 "
                    "when any failed.")
    seg.add_argument("checkpoint", help="last.pt of `spot train`, or the authors' checkpoint")
    seg.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    seg.add_argument("--out", required=True, help="output folder")
    seg.add_argument("--orders", choices=("standard", "all"), default="standard",
                     help="decoder patch orders: standard (raster, fast; default) or all nine averaged "
                          "(the paper's evaluation)")
    seg.add_argument("--masks", choices=("slot", "decoder", "both"), default="both",
                     help="which masks to write (default both)")
    seg.add_argument("--device", default="auto", help="auto (GPU if any), cpu, cuda, ...")
    seg.add_argument("--batch-size", type=positive_int, default=8, help="images per forward pass")
    seg.add_argument("--encoder", default="vit_base_patch16_224.dino",
                     help="timm ViT of an authors' checkpoint (its weights come from the file)")
    seg.add_argument("--num-slots", type=positive_int, default=None, metavar="K",
                     help="slots of an authors' shared-Gaussian model (default: the --preset's)")
    seg.add_argument("--preset", choices=sorted(PRESETS), default="coco",
                     help="what an authors' checkpoint does not store comes from this preset (default coco)")
    seg.add_argument("--sheet-images", type=int, default=12, help="images on the contact sheet (0: none)")
    seg.add_argument("--no-progress", action="store_true", help="no progress bar")
    seg.set_defaults(func=cmd_segment)
    return parser


# ----------------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from spot_tutorial.training.loop import train

    config = config_from_args(args)
    output_dir = args.output_dir or f"outputs/{args.preset}_stage{args.stage}"
    result = train(config, stage=args.stage, output_dir=output_dir, teacher=args.teacher,
                   data_path=args.data_path, device=args.device, resume=args.resume,
                   overwrite=args.overwrite, progress=not args.no_progress,
                   encoder_weights=args.encoder_weights, select_by=args.select_by,
                   mask_path=args.mask_path, init_from=args.init_from)
    chosen = f"; best.pt chosen on held-out training images: {result.best_checkpoint}" if result.best_checkpoint else ""
    print(f"[spot] stage {args.stage} done: {result.steps} steps; the model to report: {result.last_checkpoint}{chosen}")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from spot_tutorial.apps.quickstart import DEFAULT_MINUTES, run_quickstart

    run_quickstart(output_dir=args.output_dir,
                   minutes=DEFAULT_MINUTES if args.minutes is None else args.minutes,
                   student_minutes=args.student_minutes, seed=args.seed, train_images=args.train_images,
                   eval_images=args.eval_images, device=args.device, threads=args.threads,
                   data_workers=args.data_workers, progress=not args.no_progress, prerender=args.prerender)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from spot_tutorial.evaluation.evaluate import run_evaluation

    report = run_evaluation(args.checkpoint, dataset=args.dataset, data_path=args.data_path,
                            permutations=args.eval_permutations, batch_size=args.batch_size,
                            device=args.device, num_workers=args.num_workers, output_dir=args.output_dir,
                            encoder=args.encoder, max_images=args.max_images,
                            figure_images=args.figure_images, progress=not args.no_progress,
                            num_slots=args.num_slots, bf16=args.bf16, mask_path=args.mask_path,
                            mask_size=args.mask_size, panoptic=args.panoptic)
    for note in report.notes:
        print(f"[spot] {note}")
    print(report.table)
    written = [report.json_path, report.csv_path] + ([report.figure_path] if report.figure_path else [])
    print("[spot] written: " + ", ".join(str(path) for path in written))
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    from spot_tutorial.inference import segment_files

    run = segment_files(args.checkpoint, args.inputs, args.out, orders=args.orders, masks=args.masks,
                        device=args.device, batch_size=args.batch_size, encoder=args.encoder,
                        num_slots=args.num_slots, preset=args.preset, sheet_images=args.sheet_images,
                        progress=not args.no_progress)
    print(f"[spot] orders {run.settings['order_ids']}, masks: {', '.join(run.settings['masks'])}, "
          f"num_slots = {run.settings['num_slots']}; written: {run.index_path}"
          + (f", {run.sheet_path}" if run.sheet_path else ""))
    if run.failed:
        print(f"spot segment: {run.summary()}", file=sys.stderr)
        return 1
    print(f"[spot] {run.summary()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. User mistakes (spot_tutorial.errors.SpotUserError, missing or existing
    files, offline downloads, a diverged run) print one line and return 1; anything else is a
    bug and propagates with its traceback."""
    from spot_tutorial.errors import SpotUserError
    from spot_tutorial.model.encoder import OfflineError
    from spot_tutorial.training.loop import NonFiniteLossError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except OfflineError as error:
        print(f"spot {args.command}: error: {error} On the command line: --encoder-weights PATH.",
              file=sys.stderr)
        return 1
    except (SpotUserError, FileNotFoundError, FileExistsError, NonFiniteLossError) as error:
        print(f"spot {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
