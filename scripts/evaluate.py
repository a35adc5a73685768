"""Evaluate (and film) a saved run again: more episodes, another seed, another env version, one member.

    python scripts/evaluate.py --run runs/<run_name> [--checkpoint STEP] [--episodes 10] [--seed 0]
                               [--env Hopper-v5] [--member K] [--video DIR] [--video-episodes 2]

Loads the latest checkpoint (or the one at STEP) with common/runs.py, evaluates every member (or member K,
0-based, in the order of the run's members; a member gets the same episodes alone as beside the others) with the
project's evaluator, prints returns and D4RL-normalised scores, and writes run_dir/evaluations/<UTC time>.json
(atomically); nothing else in the run directory is touched. A run that is still training can be evaluated.
`--video DIR` also writes one MP4 (GIF without imageio-ffmpeg) per member, rendered offscreen, after the
evaluation's file (a new name beside any video already there).
Exit status: 0 done; 2 bad input (one line on stderr; every argument and the video directory are checked before
evaluating); 130 / 143 interrupted by SIGINT / SIGTERM (one line: what was written).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Read by the libraries at import and start-up, so set before they load (hence the imports below come after).
os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering for --video (read when the first renderer starts)
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from algorithms import load_run  # noqa: E402
from common.arguments import OneLineParser  # noqa: E402
from common.checkpoints import CheckpointError  # noqa: E402
from common.errors import DatasetError  # noqa: E402
from common.experiment.errors import Interrupted  # noqa: E402
from common.experiment.preemption import Preemption  # noqa: E402
from common.logger import write_json_atomic  # noqa: E402
from common.runs import RunError, check_writable_dir, member_label, write_video  # noqa: E402

EXIT_BAD_INPUT = 2


def parse_args(argv):
    parser = OneLineParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run directory (log_dir/run_name)")
    parser.add_argument("--checkpoint", type=int, default=None, help="checkpoint step (default: the latest)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per member")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation envs")
    parser.add_argument("--env", default="", help="gymnasium id to evaluate on (default: the run's env)")
    parser.add_argument("--member", type=int, default=None, help="evaluate only this member (0-based)")
    parser.add_argument("--video", default="", help="directory for one video per member (MP4, or GIF)")
    parser.add_argument("--video-episodes", type=int, default=2, help="episodes per video")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    if args.video_episodes < 1:
        parser.error(f"--video-episodes must be >= 1, got {args.video_episodes}")
    return args


def evaluations_file(run_dir: Path) -> Path:
    """A new name run_dir/evaluations/<UTC time>.json; RunError when it could not be written."""
    folder = check_writable_dir(run_dir / "evaluations", "the evaluations folder")
    stem = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path, n = folder / f"{stem}.json", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}_{n}.json"
    return path


def fmt(values: np.ndarray) -> str:
    if np.all(np.isnan(values)):
        return "n/a"
    return f"{np.mean(values):.1f} ± {np.std(values):.1f}"


def table(result) -> str:
    lines = ["| member | return | normalised score |", "|---|---:|---:|"]
    for member, returns, scores in zip(result.members, result.returns, result.scores):
        lines.append(f"| {member_label(member)} | {fmt(returns)} | {fmt(scores)} |")
    if len(result.members) > 1:
        lines.append(f"| all | {fmt(result.returns.mean(axis=1))} | {fmt(result.scores.mean(axis=1))} |")
    return "\n".join(lines)


def film(run, members, args, video_dir: Path) -> list[str]:
    """One video per member: `--video-episodes` episodes back to back."""
    paths = []
    for k in members:
        try:
            frames, fps, returns = run.render(k, episodes=args.video_episodes, seed=args.seed, env=args.env or None)
        except (RunError, DatasetError):
            raise
        except Exception as e:  # noqa: BLE001 - the renderer's own errors (no OpenGL, MUJOCO_GL unknown, ...)
            raise RunError(f"cannot render member {k}: {type(e).__name__}: {str(e).strip().splitlines()[0]}") \
                from None
        path = write_video(frames, fps, video_dir / f"{run.run_dir.name}_step{run.step}_member{k}")
        print(f"video: {path} ({len(frames)} frames, episode returns {', '.join(f'{r:.1f}' for r in returns)})")
        paths.append(str(path))
    return paths


def record(run, members, result, videos) -> dict:
    return {
        "run_dir": str(run.run_dir),
        "algorithm": run.algorithm,
        "dataset": run.config.dataset,
        "checkpoint_step": run.step,
        "env": result.env,
        "episodes": result.episodes,
        "seed": result.seed,
        "device": str(jax.devices()[0].device_kind),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "members": [
            {**member, "member_index": k, "returns": returns.tolist(), "normalized_scores": scores.tolist(),
             "return_mean": float(returns.mean()),
             "normalized_score_mean": None if np.all(np.isnan(scores)) else float(scores.mean())}
            for k, member, returns, scores in zip(members, result.members, result.returns, result.scores)
        ],
        "videos": videos,
    }


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = None  # the evaluation's file, once written
    try:
        with Preemption() as preemption:
            video_dir = check_writable_dir(args.video, "--video") if args.video else None
            run = load_run(args.run, args.checkpoint)
            members = list(range(len(run.members))) if args.member is None else [run.member_index(args.member)]
            path = evaluations_file(run.run_dir)
            result = run.evaluate(args.episodes, seed=args.seed, env=args.env or None, members=members)
            preemption.check()
            print(f"{run.algorithm} on {run.config.dataset}, checkpoint step {run.step}, evaluated on {result.env}: "
                  f"{args.episodes} episode(s) per member, seed {args.seed}")
            print(table(result))
            path.parent.mkdir(exist_ok=True)
            written = record(run, members, result, [])
            write_json_atomic(path, written)
            out = path
            if video_dir is not None:  # the evaluation is kept whatever happens to the films
                written["videos"] = film(run, members, args, video_dir)
                write_json_atomic(out, written)
            preemption.check()
    except (RunError, DatasetError, CheckpointError) as e:
        kept = f" (the evaluation is written: {out})" if out is not None else ""
        print(f"error: {e}{kept}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Interrupted as e:
        written = f"the evaluation is written ({out})" if out is not None else "nothing was written"
        e.detail = f"{written}, not all of its videos were made" if out is not None and args.video else written
        print(e, file=sys.stderr)
        return e.status
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
