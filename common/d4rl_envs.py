"""Evaluation envs that reproduce D4RL's protocols on current gymnasium / gymnasium-robotics / MuJoCo.

* `AntMazeD4RL_{UMaze,Medium,Large}-v0`: d4rl's `antmaze-*` eval envs (`locomotion/ant.py`,
  `maze_env.py`, `goal_reaching_env.py`). The ant is d4rl's model, not gymnasium's: gymnasium's
  `ant.xml` with d4rl's differences applied (timestep 0.02 instead of 0.01, geom solref .02 1 /
  solimp .8 .8 .01, motors gear 1 with ctrlrange +-30 instead of gear 150 with +-1; actions in
  [-1, 1] scaled to +-30 as d4rl's NormalizedBoxEnv does), frame skip 5. Blocks at
  (col * 4 - x_R, row * 4 - y_R) so the start cell R is the origin, as in d4rl. Reset: qpos + U(-0.1,
  0.1), qvel + 0.1 N(0, 1); goal = goal cell + U(0, 1) + U(0, 0.5) per axis, drawn at every reset (v2).
  Observation qpos[:15] + qvel[:14] (29); reward 1 within 0.5 of the goal, and the episode ends there.
* `D4RLAdroitReward`: gymnasium-robotics 1.4.2's Door/Hammer/Relocate-v1 add 0.1 * |palm - object|
  where d4rl subtracts it; the wrapper subtracts 0.2 * |palm - object| (same positions the env used).
* `KitchenD4RL`: FrankaKitchen-v1 seen as d4rl's kitchen: observation = robot qpos (9) + object qpos
  (21) + goal (30, zero except the target tasks' goal values); reward = number of target tasks newly
  within 0.3 of their goal (a task counts once); the episode ends when all are done.
* `mujoco4_enum_shim`: FrankaKitchen-v1 fails to build on mujoco 4.0.0 because
  `numpy.int32 in (mjtJoint.mjJNT_HINGE, ...)` is False there (the enum no longer equals a numpy
  integer when it is the left operand); gymnasium-robotics' joint helpers assert exactly that.
  The shim gives those helpers plain-int joint types.
* `route_mujoco_warnings`: mujoco 4 prints "WARNING: compiler attribute 'settotalmass' is deprecated"
  to stderr each time gymnasium's HalfCheetah model is compiled (every evaluation env); the model is
  unchanged by it. That one message is dropped, every other MuJoCo warning becomes a Python warning.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import gymnasium as gym
import numpy as np

# ----------------------------------------------------------------------------------------------
# mujoco 4 / gymnasium-robotics 1.4.2
# ----------------------------------------------------------------------------------------------


class _JointTypes:
    """mujoco.mjtJoint with plain ints, so `numpy.int32 in (...)` compares by value."""

    def __init__(self, mujoco):
        for name in ("mjJNT_FREE", "mjJNT_BALL", "mjJNT_SLIDE", "mjJNT_HINGE"):
            setattr(self, name, int(getattr(mujoco.mjtJoint, name)))


class _MujocoWithIntJoints:
    """The mujoco module as gymnasium-robotics' mujoco_utils sees it: everything but mjtJoint delegated."""

    def __init__(self, mujoco):
        self._mujoco = mujoco
        self.mjtJoint = _JointTypes(mujoco)

    def __getattr__(self, name):
        return getattr(self._mujoco, name)


def mujoco4_enum_shim() -> None:
    """Makes gymnasium-robotics' joint helpers work on mujoco >= 4 (idempotent, no effect on older)."""
    import mujoco
    from gymnasium_robotics.utils import mujoco_utils

    if isinstance(mujoco_utils.mujoco, _MujocoWithIntJoints):
        return
    if np.int32(int(mujoco.mjtJoint.mjJNT_HINGE)) in (mujoco.mjtJoint.mjJNT_HINGE,):
        return  # this mujoco compares enums with numpy ints: nothing to fix
    mujoco_utils.mujoco = _MujocoWithIntJoints(mujoco)


# A compile-time deprecation of mujoco >= 4 in gymnasium's half_cheetah.xml (the model is compiled as before).
KNOWN_HARMLESS_MUJOCO_WARNINGS = ("compiler attribute 'settotalmass' is deprecated",)


def _mujoco_warning(message: str) -> None:
    if not any(known in message for known in KNOWN_HARMLESS_MUJOCO_WARNINGS):
        import warnings

        warnings.warn(f"MuJoCo: {message.strip()}", RuntimeWarning, stacklevel=2)


def route_mujoco_warnings() -> None:
    """MuJoCo's warnings as Python warnings (filterable, shown once per message), less the known harmless one."""
    import mujoco

    if mujoco.get_mju_user_warning() is not _mujoco_warning:
        mujoco.set_mju_user_warning(_mujoco_warning)


def import_gymnasium_robotics():
    """Imports and registers gymnasium-robotics (with the mujoco 4 shim); ImportError if missing."""
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    mujoco4_enum_shim()
    return gymnasium_robotics


# ----------------------------------------------------------------------------------------------
# AntMaze as d4rl evaluates it
# ----------------------------------------------------------------------------------------------

# d4rl maze_env.py U_MAZE_TEST / BIG_MAZE_TEST / HARDEST_MAZE_TEST: 1 wall, 0 free, R start, G goal.
MAZES = {
    "umaze": ["11111",
              "1R001",
              "11101",
              "1G001",
              "11111"],
    "medium": ["11111111",
               "1R011001",
               "10010001",
               "11000111",
               "10010001",
               "10100101",
               "100010G1",
               "11111111"],
    "large": ["111111111111",
              "1R0001000001",
              "101101010101",
              "100000010001",
              "101111011101",
              "100101000001",
              "110101010111",
              "100100010G01",
              "111111111111"],
}


def _cells(maze: list[str], char: str) -> list[tuple[int, int]]:
    return [(i, j) for i, row in enumerate(maze) for j, c in enumerate(row) if c == char]


def d4rl_ant_maze_xml(maze: list[str], scaling: float = 4.0, height: float = 0.5) -> str:
    """MJCF of d4rl's AntMaze: gymnasium's ant.xml with d4rl's physics and motors, plus the maze blocks."""
    from gymnasium.envs.mujoco import ant_v4

    tree = ET.parse(os.path.join(os.path.dirname(ant_v4.__file__), "assets", "ant.xml"))
    root = tree.getroot()
    root.find("option").set("timestep", "0.02")
    default_geom = root.find("default").find("geom")
    default_geom.set("solref", ".02 1")
    default_geom.set("solimp", ".8 .8 .01")
    for motor in root.find("actuator").findall("motor"):
        motor.attrib.pop("gear", None)
        motor.set("ctrlrange", "-30.0 30.0")
        motor.set("ctrllimited", "true")
    (start_row, start_col), = _cells(maze, "R")
    x0, y0 = start_col * scaling, start_row * scaling
    worldbody = root.find("worldbody")
    for i, j in _cells(maze, "1"):
        ET.SubElement(worldbody, "geom", name=f"block_{i}_{j}", type="box", material="", contype="1",
                      conaffinity="1", rgba="0.7 0.5 0.3 1.0",
                      pos=f"{j * scaling - x0:f} {i * scaling - y0:f} {height / 2 * scaling:f}",
                      size=f"{0.5 * scaling:f} {0.5 * scaling:f} {height / 2 * scaling:f}")
    return ET.tostring(root, encoding="unicode")


class AntMazeD4RL(gym.Env):
    """d4rl's `antmaze-*` evaluation env (eval=True, sparse reward, v2 goal per reset)."""

    metadata = {"render_modes": []}
    GOAL_RADIUS = 0.5

    def __init__(self, maze: str = "umaze", maze_size_scaling: float = 4.0):
        import mujoco

        self.maze, self.scaling = MAZES[maze], float(maze_size_scaling)
        self.model = mujoco.MjModel.from_xml_string(d4rl_ant_maze_xml(self.maze, self.scaling))
        self.data = mujoco.MjData(self.model)
        self._mujoco = mujoco
        self.frame_skip = 5
        self.init_qpos, self.init_qvel = self.data.qpos.copy(), self.data.qvel.copy()
        self.ctrl_low, self.ctrl_high = (self.model.actuator_ctrlrange[:, k].copy() for k in (0, 1))
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.model.nu,), np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (29,), np.float64)
        (row, col), = _cells(self.maze, "R")
        self.origin = np.array([col, row], np.float64) * self.scaling
        (goal_row, goal_col), = _cells(self.maze, "G")
        self.goal_cell_xy = np.array([goal_col, goal_row], np.float64) * self.scaling - self.origin
        self.goal = self.goal_cell_xy.copy()

    def sample_goal(self) -> np.ndarray:
        """d4rl goal_sampler for a maze with one goal cell: cell + U(0, s/4) + U(0, 0.5) * s/4 per axis, >= 0."""
        s = self.scaling
        xy = self.goal_cell_xy + self.np_random.uniform(0, s * 0.25, 2) + self.np_random.uniform(0, 0.5, 2) * 0.25 * s
        return np.maximum(xy, 0.0)

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos[:15], self.data.qvel[:14]])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.goal = self.sample_goal()
        self._mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = self.init_qpos + self.np_random.uniform(-0.1, 0.1, self.model.nq)
        self.data.qvel[:] = self.init_qvel + self.np_random.standard_normal(self.model.nv) * 0.1
        self._mujoco.mj_forward(self.model, self.data)
        return self._obs(), {"goal": self.goal.copy()}

    def step(self, action):
        action = np.asarray(action, np.float64)
        ctrl = np.clip(self.ctrl_low + (action + 1.0) * 0.5 * (self.ctrl_high - self.ctrl_low), self.ctrl_low,
                       self.ctrl_high)
        self.data.ctrl[:] = ctrl
        self._mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        distance = float(np.linalg.norm(self.data.qpos[:2] - self.goal))
        success = distance <= self.GOAL_RADIUS
        return self._obs(), float(success), success, False, {"success": success, "goal_distance": distance}


for _maze, _name in (("umaze", "UMaze"), ("medium", "Medium"), ("large", "Large")):
    gym.register(f"AntMazeD4RL_{_name}-v0", entry_point=AntMazeD4RL, kwargs={"maze": _maze},
                 max_episode_steps=700 if _maze == "umaze" else 1000)


# ----------------------------------------------------------------------------------------------
# Adroit: d4rl's reward sign
# ----------------------------------------------------------------------------------------------

SIGN_BUG_VERSIONS = ("1.4.2",)  # gymnasium-robotics releases checked to add +0.1 |palm - object|


class D4RLAdroitReward(gym.Wrapper):
    """Door/Hammer/Relocate-v1 of gymnasium-robotics 1.4.2: reward - 0.2 * |palm - object| = d4rl's reward."""

    def __init__(self, env: gym.Env, task: str):
        super().__init__(env)
        self.task = task

    def _palm_object_distance(self) -> float:
        u = self.env.unwrapped
        if self.task == "door":
            palm, obj = u.data.site_xpos[u.grasp_site_id], u.data.site_xpos[u.handle_site_id]
        else:  # hammer, relocate: palm site and the object body, as the env's reward uses them
            palm, obj = u.data.site_xpos[u.S_grasp_site_id], u.data.xpos[u.obj_body_id]
        return float(np.linalg.norm(np.ravel(palm) - np.ravel(obj)))

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward - 0.2 * self._palm_object_distance(), terminated, truncated, info


# ----------------------------------------------------------------------------------------------
# Kitchen: d4rl's observation and reward on FrankaKitchen-v1
# ----------------------------------------------------------------------------------------------

# d4rl kitchen_envs.py: indices into qpos (9 robot + 21 objects) and the goal values of each task.
KITCHEN_ELEMENT_INDICES = {
    "bottom burner": [11, 12], "top burner": [15, 16], "light switch": [17, 18], "slide cabinet": [19],
    "hinge cabinet": [20, 21], "microwave": [22], "kettle": [23, 24, 25, 26, 27, 28, 29],
}
KITCHEN_ELEMENT_GOALS = {
    "bottom burner": [-0.88, -0.01], "top burner": [-0.92, -0.01], "light switch": [-0.69, -0.05],
    "slide cabinet": [0.37], "hinge cabinet": [0.0, 1.45], "microwave": [-0.75],
    "kettle": [-0.23, 0.75, 1.62, 0.99, 0.0, 0.0, -0.06],
}
KITCHEN_BONUS_THRESHOLD = 0.3


class KitchenD4RL(gym.Wrapper):
    """FrankaKitchen-v1 with d4rl's 60-dim observation, completion reward and termination."""

    def __init__(self, env: gym.Env, tasks: list[str]):
        super().__init__(env)
        self.tasks = list(tasks)
        self.goal = np.zeros(30)
        for task in self.tasks:
            self.goal[KITCHEN_ELEMENT_INDICES[task]] = KITCHEN_ELEMENT_GOALS[task]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (60,), np.float64)
        self.remaining: set[str] = set()

    def _view(self, obs: dict) -> np.ndarray:
        observation = np.asarray(obs["observation"], np.float64)  # robot qpos 9, qvel 9, object qpos 21, qvel 20
        return np.concatenate([observation[:9], observation[18:39], self.goal])

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.remaining = set(self.tasks)
        return self._view(obs), info

    def step(self, action):
        obs, _, _, truncated, info = self.env.step(action)
        view = self._view(obs)
        done_now = [t for t in self.remaining
                    if np.linalg.norm(view[KITCHEN_ELEMENT_INDICES[t]] - self.goal[KITCHEN_ELEMENT_INDICES[t]])
                    < KITCHEN_BONUS_THRESHOLD]
        self.remaining -= set(done_now)
        info = {**info, "tasks_completed_now": done_now}
        return view, float(len(done_now)), not self.remaining, truncated, info


# ----------------------------------------------------------------------------------------------
# Observation adapters
# ----------------------------------------------------------------------------------------------


def flatten_sorted(obs) -> np.ndarray:
    """A (nested) dict observation as one vector, entries in sorted key order (as Minari data is read)."""
    if isinstance(obs, dict):
        return np.concatenate([flatten_sorted(obs[k]) for k in sorted(obs)])
    return np.asarray(obs, np.float64).reshape(-1)


class FlattenSorted(gym.ObservationWrapper):
    def __init__(self, env: gym.Env):
        super().__init__(env)
        size = flatten_sorted(env.observation_space.sample()).shape[0]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float64)

    def observation(self, observation):
        return flatten_sorted(observation)


class PadObservation(gym.ObservationWrapper):
    """Zeros appended: D4RL ant locomotion data has 111 dims (27 + contact forces, all zero)."""

    def __init__(self, env: gym.Env, size: int):
        super().__init__(env)
        self.pad = size - env.observation_space.shape[0]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float64)

    def observation(self, observation):
        return np.pad(np.asarray(observation, np.float64), (0, self.pad))

