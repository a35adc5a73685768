"""A finished (or checkpointed) run, back in Python: its config, members, policies, evaluation and video.

    run = algorithms.load_run("runs/demo_misa_20261201_120000")   # latest checkpoint; checkpoint=STEP for another
    act = run.policy(0)                                  # jitted: obs (obs_dim,) or (B, obs_dim) -> action in [-1, 1]
    run.export("policy.onnx", member=0)                  # or .jaxexport: runs without this project (common/export.py)
    result = run.evaluate(episodes=10, seed=1)           # result.returns, result.scores: (members, episodes)

The run is rebuilt from what it wrote: `config.json` and a checkpoint (`common/checkpoints.py`). The
checkpoint names its algorithm; the caller maps that name to the algorithm's `Method`, whose `make_agent`
rebuilds the networks (and, for TD3+BC, the dataset's state normalisation, so the dataset is loaded again:
it must be the data the checkpoint records, by sha256, or the run is refused).
`algorithms.load_run` is this module's `load_run` with the algorithm files of this project as that map.
A member's evaluation episodes are its own (common/evaluation.py `episode_seed`), whoever is evaluated beside it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from common import checkpoints
from common.datasets import Dataset, load_dataset
from common.domains import setup_for_dataset
from common.evaluation import Evaluator, check_env_matches, episode_seed, make_env, to_env_action
from common.experiment.members import member_label
from common.export import ExportError, check_observations, describe, export_policy

ROOT = Path(__file__).resolve().parent.parent
# Frames per second a video is written at, at most (faster envs keep every k-th frame: still real time).
VIDEO_MAX_FPS = 30


class RunError(ValueError):
    """A run directory that cannot be loaded (one-line message)."""


class Evaluation(NamedTuple):
    """Episode returns and D4RL-normalised scores (NaN where the env has no reference) per member."""

    env: str
    episodes: int
    seed: int
    members: list[dict]
    returns: np.ndarray  # (members, episodes)
    scores: np.ndarray  # (members, episodes)


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------


def checkpoint_path(run_dir: Path, step: int | None) -> Path:
    """The latest complete checkpoint, or the one at `step`; RunError naming what exists otherwise."""
    if step is None:
        path = checkpoints.latest(run_dir)
        if path is None:
            raise RunError(f"{run_dir} has no complete checkpoint (checkpoints/step_<N>/ with state.msgpack)")
        return path
    path = run_dir / "checkpoints" / f"step_{step}"
    if not (path / "state.msgpack").exists() or not (path / "meta.json").exists():
        found = sorted(int(p.name.split("_")[1]) for p in (run_dir / "checkpoints").glob("step_*")
                       if (p / "state.msgpack").exists())
        raise RunError(f"{run_dir} has no checkpoint at step {step} (checkpoints at steps: "
                       f"{', '.join(map(str, found)) or 'none'})")
    return path


def read_json(path: Path, what: str) -> dict:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path.parent} is not a run directory: no {what}") from None
    except (OSError, ValueError) as e:
        raise RunError(f"{path} is unreadable: {str(e).splitlines()[0]}") from None
    if not isinstance(value, dict):
        raise RunError(f"{path} is unreadable: it holds no JSON object")
    return value


def read_checkpoint(run_dir: Path, step: int | None) -> tuple[Path, dict, dict]:
    """(path, meta, raw state) of the latest checkpoint or the one at `step`. A run that is training rotates its
    checkpoints: one removed between finding and reading it is looked for once more (the new latest)."""
    for attempt in range(2):
        path = checkpoint_path(run_dir, step)
        try:
            meta, raw = checkpoints.read(path)
        except FileNotFoundError:
            if attempt:
                raise RunError(f"checkpoint {path} was removed while it was read, twice: the run writing it "
                               "rotates its checkpoints faster than they load; try again") from None
            continue
        except checkpoints.CheckpointError as e:
            raise RunError(str(e)) from None
        if not {"algorithm", "members", "step"} <= set(meta):
            raise RunError(f"checkpoint {path} is incomplete: meta.json lacks algorithm, members or step")
        return path, meta, raw


def config_fields(method) -> set[str]:
    """The top-level fields of the method's config file: what its make_agent may read."""
    spec = importlib.util.spec_from_file_location(f"_config_of_{method.name}", ROOT / method.default_config)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return set(module.get_config().to_dict())


def stored_rows(raw, path: Path) -> int:
    """Leading (member) axis of the checkpointed state; larger than the member count when it was padded."""
    leaves = [x for x in jax.tree.leaves(raw) if np.ndim(x) >= 1]
    if not leaves:
        raise RunError(f"checkpoint {path} holds no per-member arrays")
    return int(np.shape(leaves[0])[0])


def check_dataset(run_dir: Path, path: Path, meta: dict, dataset: Dataset) -> None:
    """The dataset must be the one the checkpoint records (its sha256); checkpoints that record none pass."""
    identity = meta.get("identity")
    recorded = identity.get("dataset_sha256") if isinstance(identity, dict) else None
    if recorded is None:
        return
    try:
        checkpoints.check_dataset(f"checkpoint {path}", recorded, checkpoints.dataset_fingerprint(dataset.transitions),
                                  f"run {run_dir}: the dataset changed since training")
    except checkpoints.CheckpointError as e:
        raise RunError(str(e)) from None


def load_run(run_dir, method_for: Callable[[str], object], checkpoint: int | None = None,
             dataset: Dataset | None = None) -> Run:
    """Rebuilds a run from `run_dir/config.json` and its latest checkpoint (or the one at step `checkpoint`).

    `method_for(name)` returns the `Method` (common/agent.py) of the algorithm the checkpoint names (RunError when
    there is none); the run's config.json must hold every field of that method's config file.
    `dataset` may be given to skip loading the run's dataset again; like the one loaded, it must be the data the
    checkpoint was trained on (its sha256, where the checkpoint records one).
    Raises RunError (bad directory, checkpoint or dataset), DatasetError (the run's dataset is gone).
    """
    run_dir = Path(run_dir).expanduser()
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"{run_dir} is a file, not a run directory")
    if not run_dir.is_dir():
        raise RunError(f"run directory {run_dir} does not exist")
    fields = read_json(run_dir / "config.json", "config.json")
    path, meta, raw = read_checkpoint(run_dir, checkpoint)
    method = method_for(meta["algorithm"])
    missing = sorted(config_fields(method) - set(fields))
    if missing:
        more = f" (and {len(missing) - 1} more: {', '.join(missing[1:])})" if len(missing) > 1 else ""
        raise RunError(f"{run_dir / 'config.json'} lacks the field '{missing[0]}'{more}")
    config = ml_collections.ConfigDict(fields)
    dataset = dataset if dataset is not None else load_dataset(config.dataset, env_id=config.env or None)
    check_dataset(run_dir, path, meta, dataset)
    agent = method.make_agent(config, dataset)

    rows = stored_rows(raw, path)
    hparams = {k: jnp.full((rows,), v, jnp.float32) for k, v in agent.hparams.items()}
    template = jax.vmap(agent.init)(jax.random.split(jax.random.PRNGKey(0), rows), hparams)
    expected = {"algorithm": meta["algorithm"], "members": meta["members"]}
    if "dataset_stats" in meta:
        expected["dataset_stats"] = dataset.stats
    try:
        state, _ = checkpoints.restore(path, template, expected, (meta, raw))
    except checkpoints.CheckpointError as e:
        raise RunError(str(e)) from None
    return Run(run_dir, config, meta, dataset, agent, state, path)


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RunError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def check_episodes(episodes) -> int:
    if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or episodes < 1:
        raise RunError(f"episodes must be a positive integer, got {episodes!r}")
    return int(episodes)


def check_writable_dir(path, what: str) -> Path:
    """`path` as a directory that exists or can be made, and can be written to; RunError naming `what` otherwise."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise RunError(f"{what} {path} is a file, not a directory")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise RunError(f"{what} {path} cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunError(f"{what} {path} cannot be written (permission denied on {existing})")
    return path


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------


class Run:
    """A loaded run: `.config`, `.members`, `.step`, `.policy(k)`, `.evaluate(...)`, `.render(...)`."""

    def __init__(self, run_dir: Path, config, meta: dict, dataset: Dataset, agent, state, checkpoint: Path):
        self.run_dir, self.config, self.dataset, self.agent, self.state = run_dir, config, dataset, agent, state
        self.checkpoint, self.meta = checkpoint, meta
        self.algorithm: str = meta["algorithm"]
        self.members: list[dict] = list(meta["members"])
        self.step: int = int(meta["step"])
        self.setup = setup_for_dataset(dataset, config.env)  # the run's own evaluation setup (None: no env known)
        self.env_id: str | None = self.setup.env_id if self.setup is not None else None
        count = len(self.members)
        # Policy parameters of every member, stacked on a leading axis (padding rows dropped).
        self.policy_params = jax.tree.map(lambda x: x[:count], jax.vmap(agent.policy_params)(state))
        self._act = jax.jit(_any_batch(agent.act))

    def __repr__(self) -> str:
        return (f"Run({str(self.run_dir)!r}, algorithm={self.algorithm!r}, dataset={self.config.dataset!r}, "
                f"step={self.step}, members={len(self.members)})")

    def member_index(self, member: int) -> int:
        if not isinstance(member, (int, np.integer)) or not 0 <= member < len(self.members):
            raise RunError(f"member {member!r} does not exist: this run has members 0..{len(self.members) - 1} "
                           f"({'; '.join(member_label(m) for m in self.members)})")
        return int(member)

    def member_params(self, member: int):
        index = self.member_index(member)
        return jax.tree.map(lambda x: x[index], self.policy_params)

    def policy(self, member: int = 0):
        """A jitted deterministic policy of one member: obs (obs_dim,) or (B, obs_dim) -> actions in [-1, 1];
        RunError for an observation of another shape."""
        params, act, obs_dim = self.member_params(member), self._act, self.dataset.stats["obs_dim"]

        def policy(obs):
            obs = jnp.asarray(obs, jnp.float32)
            if obs.ndim not in (1, 2) or obs.shape[-1] != obs_dim:
                raise RunError(f"observation of shape {tuple(obs.shape)}: this run's policies take ({obs_dim},) "
                               f"or (batch, {obs_dim})")
            return act(params, obs)

        return policy

    def export(self, path, member: int = 0, overwrite: bool = False) -> dict:
        """Writes one member's deterministic evaluation policy to `path`: `.jaxexport` (jax.export, metadata in
        `<path>.json`) or `.onnx` (metadata in the model); returns the metadata. An existing file is replaced only
        with `overwrite=True`. RunError when it cannot be done (common/export.py)."""
        index = self.member_index(member)
        try:
            return export_policy(path, self.agent.act, self.member_params(index), self.dataset.stats["obs_dim"],
                                 describe(self, index), check_observations(self.dataset.transitions.observations),
                                 overwrite)
        except ExportError as e:
            raise RunError(str(e)) from None

    def evaluate(self, episodes: int = 10, seed: int = 0, env: str | None = None,
                 members: list[int] | None = None) -> Evaluation:
        """Runs `episodes` episodes per member with the project's evaluator (env seeds from `seed`)."""
        episodes, seed, chosen = check_episodes(episodes), check_seed(seed), self.chosen(members)
        setup = self._setup(env)
        params = jax.tree.map(lambda x: x[np.asarray(chosen)], self.policy_params)
        stats = self.dataset.stats
        evaluator = Evaluator(setup, self.agent.act, len(chosen), episodes, stats["obs_dim"], stats["act_dim"], seed,
                              members=chosen)
        try:
            returns = evaluator(params, 0)
            scores = evaluator.normalized(returns)
        finally:
            evaluator.close()
        return Evaluation(setup.env_id, episodes, seed, [self.members[i] for i in chosen], returns, scores)

    def chosen(self, members: list[int] | None) -> list[int]:
        """Member indices to evaluate: all (None), or the ones named, at least one and each once."""
        if members is None:
            return list(range(len(self.members)))
        chosen = [self.member_index(m) for m in members]
        if not chosen:
            raise RunError(f"members must name at least one member (0..{len(self.members) - 1}), or be None for all")
        if len(set(chosen)) < len(chosen):
            raise RunError(f"members must be distinct, got {list(members)!r}")
        return chosen

    def render(self, member: int = 0, episodes: int = 1, seed: int = 0, env: str | None = None,
               max_steps: int | None = None, size: tuple[int, int] = (480, 360)):
        """Frames of `episodes` episodes of one member, rendered offscreen: (frames, fps, episode returns).

        MuJoCo renders headless with EGL (or OSMesa): MUJOCO_GL=egl is used unless set otherwise.
        """
        os.environ.setdefault("MUJOCO_GL", "egl")
        episodes, seed = check_episodes(episodes), check_seed(seed)
        setup, policy = self._setup(env), self.policy(member)
        stats = self.dataset.stats
        screen = make_env(setup, render_mode="rgb_array", width=size[0], height=size[1])
        if tracking_camera(screen) is not None:  # follow the body (the locomotion models name it "track")
            screen.close()
            screen = make_env(setup, render_mode="rgb_array", width=size[0], height=size[1], camera_name="track")
        try:
            check_env_matches(screen, setup.env_id, stats["obs_dim"], stats["act_dim"])
            low, high = screen.action_space.low, screen.action_space.high
            fps = int(screen.metadata.get("render_fps") or VIDEO_MAX_FPS)
            stride = max(1, round(fps / VIDEO_MAX_FPS))
            frames, returns = [], []
            for episode in range(episodes):
                obs, _ = screen.reset(seed=episode_seed(seed, 0, episode))
                total, t, done = 0.0, 0, False
                while not done and (max_steps is None or t < max_steps):
                    if t % stride == 0:
                        frames.append(screen.render())
                    action = to_env_action(np.asarray(policy(np.asarray(obs, np.float32)), np.float64), low, high)
                    obs, reward, terminated, truncated, _ = screen.step(action)
                    total, t, done = total + float(reward), t + 1, terminated or truncated
                returns.append(total)
        finally:
            screen.close()
        return frames, fps / stride, returns

    def _setup(self, env: str | None):
        """The run's evaluation setup, or the one for another env id (scored only where that env has refs)."""
        setup = setup_for_dataset(self.dataset, env) if env else self.setup
        if setup is None:
            raise RunError(f"cannot infer the evaluation env of dataset '{self.config.dataset}': name one (env=...)")
        return setup


def tracking_camera(env):
    """The id of the MuJoCo camera named "track" in the env's model, or None."""
    import mujoco

    model = getattr(env.unwrapped, "model", None)
    if model is None:
        return None
    camera = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "track")
    return None if camera < 0 else camera


def _any_batch(act):
    """act(params, (B, obs_dim)) -> a function that also takes one observation (obs_dim,)."""

    def act_any(params, obs):
        return act(params, obs[None])[0] if obs.ndim == 1 else act(params, obs)

    return act_any


# ------------------------------------------------------------------------------------------------
# Video files
# ------------------------------------------------------------------------------------------------


def video_writer_kind() -> str:
    """'mp4' when imageio's ffmpeg backend is installed (pip install imageio-ffmpeg), else 'gif'."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return "gif"
    return "mp4"


def write_video(frames, fps: float, path_stem: Path) -> Path:
    """Writes frames as path_stem.mp4 (H.264) or, without an ffmpeg backend, path_stem.gif; a video already there
    is kept (the new one gets path_stem_2, _3, ...). Written under a temporary name, renamed when complete."""
    import imageio.v2 as imageio

    if not frames:
        raise RunError("no frames to write")
    kind = video_writer_kind()
    path, n = Path(f"{path_stem}.{kind}"), 1
    while path.exists():
        n += 1
        path = Path(f"{path_stem}_{n}.{kind}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial.{kind}")
    try:
        if kind == "mp4":  # the ffmpeg subprocess starts with the first frame
            writer = imageio.get_writer(partial, fps=fps, codec="libx264", quality=7, macro_block_size=8)
        else:
            writer = imageio.get_writer(partial, mode="I", duration=1000.0 / fps, loop=0)
        with writer, warnings.catch_warnings():  # the encoder is a subprocess; its fork warning is not ours
            warnings.simplefilter("ignore", RuntimeWarning)
            for frame in frames:
                writer.append_data(np.asarray(frame))
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
