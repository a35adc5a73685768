"""`make demo`: trains MISA on a dataset shipped with the project and says where the results are.

The demo uses the reduced `demo` variant of configs/misa_mujoco.py (a smaller budget than the paper's, so it
finishes in minutes on a CPU); it prints that configuration before training.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from algorithms import misa  # noqa: E402
from configs import misa_mujoco  # noqa: E402


def main() -> int:
    config = misa_mujoco.get_config("demo")
    run_name = time.strftime("demo_misa_%Y%m%d_%H%M%S")
    print(f"MISA demo on the shipped dataset '{config.dataset}': {config.total_steps} gradient steps, "
          f"N = {config.n_actions} policy samples, evaluation every {config.eval_every} steps with "
          f"{config.eval_episodes} episodes, {config.num_seeds} seed(s).")
    print("This is a reduced budget for a quick look (the paper trains 1.2M steps); see README for full runs.")
    return misa.main(["misa", f"--config={ROOT}/configs/misa_mujoco.py:demo", "--config.log_dir=runs",
                      f"--config.run_name={run_name}"])


if __name__ == "__main__":
    sys.exit(main())
