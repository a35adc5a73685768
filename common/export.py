"""One member's evaluation policy as a file that runs without this project: jax.export (.jaxexport) or ONNX (.onnx).

    run = algorithms.load_run("runs/<run name>")
    run.export("hopper_policy.onnx", member=0)           # or .jaxexport (+ hopper_policy.jaxexport.json)

What is exported is the run's own `act(policy_params, obs)` (common/agent.py) with one member's parameters fixed:
observations (batch, obs_dim) float32 in the dataset's layout -> deterministic evaluation actions (batch, act_dim)
float32 in [-1, 1], every observation normalisation and action transform of the method included (TD3+BC's dataset
mean and std become constants of the file; CQL and MISA give tanh of the clipped Gaussian mean). The batch size is
symbolic; an observation of another size is refused by the file itself.

Two routes, one traced function:
  * `.jaxexport`: `jax.export` of the jitted function, serialised StableHLO for CPU and CUDA. Loaded with jax alone
    (`jax.export.deserialize(bytes).call(obs)`); the metadata is the sidecar `<file>.json` (`sidecar`).
  * `.onnx`: the function's jaxpr (the same trace) translated operation by operation into an ONNX graph with the
    `onnx` package's helpers (`jaxpr_to_onnx`): dense layers become MatMul + Add, relu Max, elu Where/Exp,
    LayerNorm ReduceSum/Sqrt arithmetic, tanh Tanh; nothing about the networks or the normalisation is written a
    second time, so the graph computes what the run computes. The metadata is the model's metadata_props (string
    values, JSON for the others). Needs requirements-export.txt (`make install-export`).
Before a file is written, it is run on dataset and random observations and compared with the run's own actions;
a difference above CHECK_TOLERANCE refuses the export. An existing file is replaced only with `overwrite=True`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from common.logger import write_bytes_atomic

SUFFIXES = (".jaxexport", ".onnx")
PLATFORMS = ("cpu", "cuda")  # what a .jaxexport file may run on
CHECK_TOLERANCE = 1e-5  # largest |exported - run| action difference accepted at export
ONNX_OPSET, ONNX_IR_VERSION = 18, 9  # opset 18: ReduceMax/Min take axes as an input; IR 9: onnxruntime >= 1.15
INSTALL_HINT = "exporting to .onnx needs the packages of requirements-export.txt: run `make install-export`"
BATCH = "batch"  # the name of the symbolic batch dimension in both formats


class ExportError(ValueError):
    """An export that cannot be done (one-line message)."""


def sidecar(path) -> Path:
    """The metadata file of a .jaxexport file: the same name with `.json` appended (policy.jaxexport.json)."""
    return Path(f"{path}.json")


def check_output(path, overwrite: bool = False) -> Path:
    """`path` as an output this function can write: known suffix, a writable existing folder, and no file there
    (or beside it, for the sidecar) unless `overwrite`; the onnx packages importable for `.onnx`."""
    path = Path(path).expanduser()
    if path.suffix not in SUFFIXES:
        raise ExportError(f"output {path} has suffix '{path.suffix}': use .jaxexport (jax.export) or .onnx (ONNX)")
    if path.is_dir():
        raise ExportError(f"output {path} is a directory, not a file name")
    folder = path.parent
    if not folder.is_dir():
        why = "is a file" if folder.exists() else "does not exist"
        raise ExportError(f"output {path} cannot be written: folder {folder} {why}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"output {path} cannot be written (permission denied on {folder})")
    targets = [path] + ([sidecar(path)] if path.suffix == ".jaxexport" else [])
    for target in targets:
        if target.is_dir() or (target.exists() and not overwrite):
            raise ExportError(f"{target} exists: choose another name, or replace it with --overwrite "
                              "(overwrite=True in Python)")
    if path.suffix == ".onnx":
        onnx_modules()
    return path


def onnx_available() -> bool:
    """Whether onnx and onnxruntime import (requirements-export.txt)."""
    try:
        onnx_modules()
    except ExportError:
        return False
    return True


def onnx_modules():
    """(onnx, onnxruntime), or ExportError naming `make install-export`."""
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ExportError(INSTALL_HINT) from None
    return onnx, onnxruntime


def describe(run, member: int) -> dict:
    """The metadata written beside (or into) an exported policy of `run`'s member (a common/runs.py Run)."""
    identity = run.meta.get("identity") if isinstance(run.meta.get("identity"), dict) else {}
    stats = run.dataset.stats
    return {
        "algorithm": run.algorithm,
        "env_id": run.env_id,
        "observation_adapter": run.setup.adapter if run.setup is not None else None,
        "obs_dim": int(stats["obs_dim"]),
        "act_dim": int(stats["act_dim"]),
        "dataset": str(run.config.dataset),
        "dataset_sha256": identity.get("dataset_sha256"),  # None: the checkpoint records none (older runs)
        "checkpoint_step": run.step,
        "member": member,
        "member_values": run.members[member],  # its seed and swept hyperparameter values
        "run_dir": str(run.run_dir),
        "input": f"observations float32 ({BATCH}, obs_dim), the dataset's layout (after observation_adapter)",
        "output": "actions float32 (batch, act_dim) in [-1, 1]; a Box(low, high) env takes "
                  "low + (action + 1) * (high - low) / 2",
        "exported_with": f"jax {jax.__version__}",
    }


def check_observations(dataset_obs, count: int = 256, seed: int = 0) -> np.ndarray:
    """Observations the export is checked on: up to `count` dataset rows and `count` random ones drawn around them
    (the dataset's mean + 2 std x standard normal, each dimension)."""
    data = np.asarray(dataset_obs, np.float32)
    rng = np.random.default_rng(seed)
    random = data.mean(0) + 2.0 * data.std(0) * rng.standard_normal((count, data.shape[1]))
    return np.concatenate([data[:count], random.astype(np.float32)])


def export_policy(path, act, params, obs_dim: int, metadata: dict, check_obs, overwrite: bool = False) -> dict:
    """Writes obs -> act(params, obs) to `path` (.jaxexport or .onnx) with `metadata`; returns the metadata written
    (with `max_abs_difference_at_export`, measured on `check_obs` against the run's jitted act)."""
    path = check_output(path, overwrite)
    params = jax.device_get(params)

    def policy(obs):
        return act(params, obs)

    check_obs = np.asarray(check_obs, np.float32)
    expected = np.asarray(jax.jit(act)(params, check_obs))  # as the run computes it (common/runs.py Run.policy)
    (batch,) = jax.export.symbolic_shape(BATCH)
    spec = jax.ShapeDtypeStruct((batch, obs_dim), jnp.float32)
    if path.suffix == ".jaxexport":
        payload = bytes(jax.export.export(jax.jit(policy), platforms=PLATFORMS)(spec).serialize())
        got = np.asarray(jax.export.deserialize(bytearray(payload)).call(check_obs))
    else:
        onnx, runtime = onnx_modules()
        model = jaxpr_to_onnx(jax.make_jaxpr(policy)(spec), obs_dim)
        payload = model.SerializeToString()
        session = runtime.InferenceSession(payload, providers=["CPUExecutionProvider"])
        got = session.run(None, {"observations": check_obs})[0]
    difference = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else float("inf")
    if not difference <= CHECK_TOLERANCE:
        raise ExportError(f"the exported policy differs from the run's by {difference:.3g} (> {CHECK_TOLERANCE}) on "
                          f"{len(check_obs)} observations; nothing written")
    metadata = {**metadata, "format": path.suffix[1:], "max_abs_difference_at_export": difference,
                "checked_on": f"{len(check_obs)} dataset and random observations"}
    if path.suffix == ".onnx":
        model = onnx.load_from_string(payload)
        onnx.helper.set_model_props(model, {k: v if isinstance(v, str) else json.dumps(v) for k, v in
                                            metadata.items()})
        write_bytes_atomic(path, model.SerializeToString())
    else:
        write_bytes_atomic(path, payload)
        write_bytes_atomic(sidecar(path), (json.dumps(metadata, indent=1) + "\n").encode())
    return metadata


# ------------------------------------------------------------------------------------------------
# jaxpr -> ONNX: one ONNX node (or a few) per JAX operation of the traced policy
# ------------------------------------------------------------------------------------------------

BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "max": "Max", "min": "Min", "pow": "Pow",
          "gt": "Greater", "lt": "Less", "ge": "GreaterOrEqual", "le": "LessOrEqual", "eq": "Equal",
          "and": "And", "or": "Or"}
UNARY = {"tanh": "Tanh", "exp": "Exp", "log": "Log", "neg": "Neg", "abs": "Abs", "sqrt": "Sqrt",
         "logistic": "Sigmoid", "sign": "Sign", "floor": "Floor", "ceil": "Ceil", "erf": "Erf", "not": "Not",
         "copy": "Identity", "copy_p": "Identity", "sin": "Sin", "cos": "Cos"}
INLINED = ("jaxpr", "call_jaxpr", "fun_jaxpr")  # where a call-like operation (jit, custom_jvp_call, ...) keeps its body


class OnnxGraph:
    """Nodes and constants of the graph being built; names are fresh per value."""

    def __init__(self, onnx, obs_dim: int):
        self.onnx, self.helper = onnx, onnx.helper
        self.nodes, self.initializers, self.count = [], [], 0
        self.batch = self.node("Shape", ["observations"], end=1)  # the runtime batch size, shape (1,)

    def fresh(self) -> str:
        self.count += 1
        return f"v{self.count}"

    def node(self, op: str, inputs: list[str], outputs: int = 1, **attrs):
        names = [self.fresh() for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op, inputs, names, **attrs))
        return names[0] if outputs == 1 else names

    def const(self, value, dtype=None) -> str:
        name = self.fresh()
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def shape(self, dims) -> str:
        """An int64 shape tensor; the symbolic batch dimension is read from the input at run time."""
        if all(isinstance(d, (int, np.integer)) for d in dims):
            return self.const(np.asarray(dims, np.int64).reshape(-1))
        parts = []
        for d in dims:
            if isinstance(d, (int, np.integer)):
                parts.append(self.const(np.asarray([d], np.int64)))
            elif str(d) == BATCH:
                parts.append(self.batch)
            else:
                raise ExportError(f"ONNX export cannot express the shape dimension '{d}'; export to .jaxexport")
        return self.node("Concat", parts, axis=0)


def jaxpr_to_onnx(closed_jaxpr, obs_dim: int):
    """An ONNX model computing `closed_jaxpr` (one input (batch, obs_dim) float32, one output)."""
    onnx, _ = onnx_modules()
    graph = OnnxGraph(onnx, obs_dim)
    jaxpr = closed_jaxpr.jaxpr
    (out,) = emit_jaxpr(graph, jaxpr, closed_jaxpr.consts, ["observations"])
    graph.nodes.append(onnx.helper.make_node("Identity", [out], ["actions"]))
    act_dim = jaxpr.outvars[0].aval.shape[-1]
    float32 = onnx.TensorProto.FLOAT
    inputs = [onnx.helper.make_tensor_value_info("observations", float32, [BATCH, obs_dim])]
    outputs = [onnx.helper.make_tensor_value_info("actions", float32, [BATCH, int(act_dim)])]
    body = onnx.helper.make_graph(graph.nodes, "policy", inputs, outputs, graph.initializers)
    model = onnx.helper.make_model(body, opset_imports=[onnx.helper.make_opsetid("", ONNX_OPSET)],
                                   producer_name="misa-jax common/export.py")
    model.ir_version = ONNX_IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def emit_jaxpr(graph: OnnxGraph, jaxpr, consts, inputs: list[str]) -> list[str]:
    """Emits the nodes of `jaxpr` whose inputs are the graph values `inputs`; returns the names of its outputs."""
    env = {}

    def read(atom):
        if hasattr(atom, "val"):  # a Literal
            return graph.const(atom.val, atom.aval.dtype)
        return env[atom]

    for var, value in zip(jaxpr.constvars, consts):
        env[var] = graph.const(np.asarray(value))
    env.update(zip(jaxpr.invars, inputs))
    for eqn in jaxpr.eqns:
        outs = emit_equation(graph, eqn, [read(v) for v in eqn.invars])
        env.update(zip(eqn.outvars, outs))
    return [read(v) for v in jaxpr.outvars]


def emit_equation(graph: OnnxGraph, eqn, args: list[str]) -> list[str]:
    """The ONNX nodes of one JAX operation; ExportError for one this translation does not know."""
    name, p = eqn.primitive.name, eqn.params
    body = next((p[k] for k in INLINED if k in p and hasattr(p[k], "jaxpr")), None)
    if body is not None:
        return emit_jaxpr(graph, body.jaxpr, body.consts, args)
    if name in BINARY:
        return [graph.node(BINARY[name], args)]
    if name in UNARY:
        return [graph.node(UNARY[name], args)]
    emit = EMITTERS.get(name)
    if emit is None:
        raise ExportError(f"ONNX export does not know the JAX operation '{name}' in this policy; "
                          "export to .jaxexport instead")
    out = emit(graph, args, p, [v.aval for v in eqn.invars], eqn.outvars[0].aval)
    return out if isinstance(out, list) else [out]


def one_like(graph, dtype) -> str:
    return graph.const(1, np.dtype(dtype))


def emit_dot_general(graph, args, p, avals, out):
    (contract_l, contract_r), (batch_l, batch_r) = p["dimension_numbers"]
    lhs, rhs = avals
    if batch_l or batch_r or rhs.ndim != 2 or tuple(contract_r) != (0,) or tuple(contract_l) != (lhs.ndim - 1,):
        raise ExportError(f"ONNX export knows dot_general only as x @ W (W 2-D), not {p['dimension_numbers']}")
    return graph.node("MatMul", args)


def emit_broadcast_in_dim(graph, args, p, avals, out):
    kept = dict(zip(p["broadcast_dimensions"], avals[0].shape))
    with_ones = [kept.get(i, 1) for i in range(len(p["shape"]))]
    return graph.node("Expand", [graph.node("Reshape", [args[0], graph.shape(with_ones)]), graph.shape(p["shape"])])


def emit_select_n(graph, args, p, avals, out):
    if len(args) != 3 or avals[0].dtype != np.bool_:
        raise ExportError("ONNX export knows select_n only with a boolean predicate and two cases")
    return graph.node("Where", [args[0], args[2], args[1]])  # select_n picks cases[pred]


def emit_reduce(op):
    def emit(graph, args, p, avals, out):
        return graph.node(op, [args[0], graph.const(np.asarray(p["axes"], np.int64))], keepdims=0)

    return emit


def emit_cast(graph, args, p, avals, out):
    to = graph.helper.np_dtype_to_tensor_dtype(np.dtype(p["new_dtype"]))
    return graph.node("Cast", args, to=to)


def emit_split(graph, args, p, avals, out):
    sizes = graph.const(np.asarray(p["sizes"], np.int64))
    return list(graph.node("Split", [args[0], sizes], outputs=len(p["sizes"]), axis=int(p["axis"])))


def emit_slice(graph, args, p, avals, out):
    axes = list(range(len(p["start_indices"])))
    steps = p["strides"] or [1] * len(axes)
    return graph.node("Slice", [args[0], graph.shape(p["start_indices"]), graph.shape(p["limit_indices"]),
                                graph.const(np.asarray(axes, np.int64)), graph.const(np.asarray(steps, np.int64))])


EMITTERS = {
    "dot_general": emit_dot_general,
    "broadcast_in_dim": emit_broadcast_in_dim,
    "select_n": emit_select_n,
    "reshape": lambda g, a, p, avals, out: g.node("Reshape", [a[0], g.shape(p["new_sizes"])]),
    "squeeze": lambda g, a, p, avals, out: g.node("Reshape", [a[0], g.shape(out.shape)]),
    "convert_element_type": emit_cast,
    "reduce_sum": emit_reduce("ReduceSum"),
    "reduce_max": emit_reduce("ReduceMax"),
    "reduce_min": emit_reduce("ReduceMin"),
    "split": emit_split,
    "slice": emit_slice,
    "concatenate": lambda g, a, p, avals, out: g.node("Concat", a, axis=int(p["dimension"])),
    "transpose": lambda g, a, p, avals, out: g.node("Transpose", a, perm=list(p["permutation"])),
    "clamp": lambda g, a, p, avals, out: g.node("Min", [g.node("Max", [a[1], a[0]]), a[2]]),
    "square": lambda g, a, p, avals, out: g.node("Mul", [a[0], a[0]]),
    "rsqrt": lambda g, a, p, avals, out: g.node("Reciprocal", [g.node("Sqrt", a)]),
    "expm1": lambda g, a, p, avals, out: g.node("Sub", [g.node("Exp", a), one_like(g, avals[0].dtype)]),
    "log1p": lambda g, a, p, avals, out: g.node("Log", [g.node("Add", [a[0], one_like(g, avals[0].dtype)])]),
    "integer_pow": lambda g, a, p, avals, out: g.node("Pow", [a[0], g.const(p["y"], avals[0].dtype)]),
}
