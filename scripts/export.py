"""Export one member's evaluation policy of a saved run to a file that runs without this project.

    python scripts/export.py --run runs/<run_name> [--member K] [--checkpoint STEP] --out policy.onnx [--overwrite]

The suffix of --out chooses the format: `.jaxexport` (jax.export; runs with jax alone; metadata in the sidecar
`<out>.json`) or `.onnx` (runs with onnxruntime; metadata in the model; needs `make install-export`). The policy
is the run's deterministic evaluation action, observation normalisation included (common/export.py); the batch
size is left free. The output is checked before the run is loaded and never replaced without --overwrite.
Exit status: 0 written; 2 bad input (one line on stderr, nothing written).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from algorithms import load_run  # noqa: E402
from common.arguments import EXIT_BAD_INPUT, OneLineParser  # noqa: E402
from common.checkpoints import CheckpointError  # noqa: E402
from common.errors import DatasetError  # noqa: E402
from common.export import ExportError, check_output, sidecar  # noqa: E402
from common.runs import RunError, member_label  # noqa: E402


def parse_args(argv):
    parser = OneLineParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory (log_dir/run_name)")
    parser.add_argument("--member", type=int, default=0, help="member to export (0-based; default 0)")
    parser.add_argument("--checkpoint", type=int, default=None, help="checkpoint step (default: the latest)")
    parser.add_argument("--out", required=True, help="output file: <name>.jaxexport or <name>.onnx")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    if args.member < 0:
        parser.error(f"--member must be >= 0, got {args.member}")
    return args


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        out = check_output(args.out, args.overwrite)
        run = load_run(args.run, args.checkpoint)
        metadata = run.export(out, member=args.member, overwrite=args.overwrite)
    except (RunError, ExportError, DatasetError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    where = f" (metadata: {sidecar(out)})" if out.suffix == ".jaxexport" else " (metadata in the model)"
    print(f"{run.algorithm} on {run.config.dataset}, checkpoint step {run.step}, member {args.member} "
          f"({member_label(metadata['member_values'])}): {out}, {out.stat().st_size} bytes{where}")
    print(f"largest action difference from the run's own on {metadata['checked_on']}: "
          f"{metadata['max_abs_difference_at_export']:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
