"""The `spot` command: its parser and commands, from the tables of spot_tutorial.apps.options; the work
is done by the library.

    spot quickstart                                    # both stages on synthetic shapes, CPU, minutes
    spot train --stage 1 --preset coco --data-path /data/coco --output-dir runs/coco_teacher
    spot train --stage 2 --preset coco --data-path /data/coco --teacher runs/coco_teacher/last.pt \\
               --output-dir runs/coco_student
    spot evaluate runs/coco_student/last.pt --data-path /data/coco --eval-orders all
    spot evaluate coco_spot.pt --data-path /data/coco --num-slots 7    # the authors' file, fp32
    spot segment runs/coco_student/last.pt my_photos/ --out segmented/  # masks for your own images
    spot train --stage 1 --dataset folder --data-path my_photos --init-from coco_spot.pt ...  # fine-tune
    torchrun --nproc_per_node 4 -m spot_tutorial train --stage 1 --preset coco ...   # several GPUs

Every field of `SPOTConfig` is an option (``--num-slots 6``, ``--lr-main 2e-4``,
``--train-orders 0 5 8``, ``--bf16 / --no-bf16``); given options override the preset.
Stage 2 first applies the paper's student settings (embedding init, bi-level truncation, ViT
blocks >= 8 trained), so they too can be overridden.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from spot_tutorial.apps.options import (  # noqa: F401  (parse helpers re-exported for scripts)
    COMMANDS,
    COMMANDS_BY_NAME,
    CONFIG_PREFIX,
    DESCRIPTION,
    EVALUATE,
    PROGRAM,
    QUICKSTART,
    SEGMENT,
    TRAIN,
    Command,
    OrderSpecAction,
    add_command,
    add_config_options,
    chosen_preset,
    config_overrides,
    library_arguments,
    parse_order_spec,
    positive_int,
    thread_count,
    user_paths,
)
from spot_tutorial.config import SPOTConfig
from spot_tutorial.recipes import get_preset


def config_from_args(args: argparse.Namespace) -> SPOTConfig:
    """Preset -> (stage 2: the paper's student settings) -> the options given."""
    from spot_tutorial.recipes import student_config

    config = get_preset(args.preset)
    if getattr(args, "stage", 1) == 2:  # the paper's student, and the dataset's stage-2 schedule
        config = student_config(config)
    return config.replace(**config_overrides(args))


# ----------------------------------------------------------------------------------------------
def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The `spot` parser, built from the tables of spot_tutorial.apps.options; `argv` (the command
    line to be parsed) only chooses the preset whose values the field options' help shows."""
    preset, stage = chosen_preset(argv)
    parser = argparse.ArgumentParser(prog=PROGRAM, description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    handlers = {"train": cmd_train, "quickstart": cmd_quickstart, "evaluate": cmd_evaluate,
                "segment": cmd_segment}
    for command in COMMANDS:
        add_command(commands, command, preset, stage).set_defaults(func=handlers[command.name])
    return parser


# ----------------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from spot_tutorial.training.loop import train

    config = config_from_args(args)
    output_dir = args.output_dir or f"outputs/{args.preset}_stage{args.stage}"
    result = train(config, output_dir=output_dir, **library_arguments(args, TRAIN))
    chosen = (f"; best.pt chosen on held-out training images: {result.best_checkpoint}"
              if result.best_checkpoint else "")
    print(f"[spot] stage {args.stage} done: {result.steps} steps; "
          f"the model to report: {result.last_checkpoint}{chosen}")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from spot_tutorial.apps.quickstart import run_quickstart

    run_quickstart(minutes=args.minutes, **library_arguments(args, QUICKSTART))  # None: the scenes' own
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from spot_tutorial.evaluation.evaluate import run_evaluation

    report = run_evaluation(**library_arguments(args, EVALUATE))
    for note in report.notes:
        print(f"[spot] {note}")
    print(report.table)
    written = [report.json_path, report.csv_path] + ([report.figure_path] if report.figure_path else [])
    print("[spot] written: " + ", ".join(str(path) for path in written))
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    from spot_tutorial.inference import segment_files

    run = segment_files(**library_arguments(args, SEGMENT))
    print(f"[spot] orders {run.settings['order_ids']}, masks: {', '.join(run.settings['masks'])}, "
          f"num_slots = {run.settings['num_slots']}; written: {run.index_path}"
          + (f", {run.sheet_path}" if run.sheet_path else ""))
    if run.failed:
        print(f"spot segment: {run.summary()}", file=sys.stderr)
        return 1
    print(f"[spot] {run.summary()}")
    return 0


def missing_file_message(error: FileNotFoundError, args: argparse.Namespace) -> str | None:
    """What to print for a FileNotFoundError that means "a file or folder you named is not there",
    or None when it is not one (a file of the library's own missing: a bug, kept with its traceback).

    The library reports a missing input with its own message (an error without an OS error number:
    "checkpoint not found: PATH", "COCO val2017 image folder not found: ..."); the operating system's
    error counts when its file is one the user named on the command line.
    """
    if error.errno is None:
        return str(error)
    named = user_paths(args, COMMANDS_BY_NAME[args.command])
    if error.filename is not None and str(error.filename) in named:
        return f"{named[str(error.filename)]} {error.filename}: no such file or folder; check the path"
    return None


def check_output_folder(args: argparse.Namespace) -> None:
    """Before any work: the command's output folder (--output-dir / --out) can be made and written."""
    from spot_tutorial.errors import InputError

    for flag, name in (("--output-dir", "output_dir"), ("--out", "out")):
        folder = getattr(args, name, None)
        if folder is None:
            continue
        path = Path(folder).absolute()
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not existing.is_dir():
            what = "is a file" if existing == path else f"is below {existing}, which is a file"
            raise InputError(f"{flag} {folder} {what}, not a folder: pass a folder path")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise InputError(f"{flag} {folder}: {existing} is not writable by this user; pass a "
                             "folder you can write to")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. User mistakes (spot_tutorial.errors.SpotUserError, a missing input file
    or folder, an existing run, offline downloads, a diverged run) print one line and return 1;
    anything else is a bug and propagates with its traceback."""
    from spot_tutorial.errors import SpotUserError
    from spot_tutorial.model.encoder import OfflineError
    from spot_tutorial.training.loop import NonFiniteLossError

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    try:
        check_output_folder(args)
        return args.func(args)
    except OfflineError as error:
        print(f"spot {args.command}: error: {error} On the command line: --encoder-weights PATH.",
              file=sys.stderr)
        return 1
    except FileNotFoundError as error:
        message = missing_file_message(error, args)
        if message is None:
            raise
        print(f"spot {args.command}: error: {message}", file=sys.stderr)
        return 1
    except (SpotUserError, FileExistsError, NonFiniteLossError) as error:
        print(f"spot {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
