"""The runner loop, message for message the Python twin of harness/worker/node-worker.ts:
job (or probe) -> hello -> built -> parity (train-parity for a training cell) -> continue|stop ->
samples -> memory -> done, or an `error` naming the phase, with the traceback, and `unavailable`
+ `fix` when the engine cannot run here. A shape-stream cell (harness/worker/protocol.ts, the job's
`stream`) sends stream-parity, and on continue passes before its samples. stdout/stderr
stay free for the frameworks' own logs."""

import ctypes
import importlib
import os
import platform
import signal
import socket
import sys
import time
import traceback

import numpy as np

from .engine import BuildRequest, EngineUnavailable, GenerateRequest, TrainRequest, install_fix
from .fault import maybe_fault, parse_fault
from .load import watch_load
from .manifest import PRECISIONS, TASKS
from .measure import measure
from .memory import peak_host_bytes
from .peak import PeakRequest
from .protocol import PROTOCOL_VERSION, Channel
from .safetensors import load_tensors, save_tensors

#: prctl option: the signal this process gets when its parent dies.
PR_SET_PDEATHSIG = 1

#: engine id -> (module, top-level framework import, pip package that provides it).
ENGINES = {
    "torch": ("fwbench_runner.torch", "torch", "torch"),
    "tensorflow": ("fwbench_runner.tensorflow", "tensorflow", "tensorflow-cpu"),
}


def load_engine(engine_id):
    """Imports the engine module; a missing framework makes the engine unavailable, with the install command."""
    if engine_id not in ENGINES:
        raise ValueError(f"the Python runner has no engine '{engine_id}'; it runs {', '.join(ENGINES)}")
    module, framework, package = ENGINES[engine_id]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] == framework:
            raise EngineUnavailable(f"{framework} is not installed for {sys.executable}", install_fix(package)) from e
        raise


class Worker:
    def __init__(self, channel, fault=None):
        self.channel = channel
        self.phase = "start"
        self.fault = fault
        #: The kind of an injected fault that the runner itself carries out in the phase entered last.
        self.planted = None

    def enter(self, phase, engine, batch_size=None):
        """Announces a phase (so a runner that dies silently still leaves it) and fires an injected test fault there."""
        self.phase = phase
        self.channel.send({"type": "phase", "phase": phase})
        self.planted = maybe_fault(self.fault, phase, engine, batch_size, self.channel.sock.sendall)

    def run(self):
        first = self.channel.receive()
        self.channel.send(
            {"type": "hello", "protocol": PROTOCOL_VERSION, "pid": os.getpid(), "language": "python", "runtime": f"python {platform.python_version()}"}
        )
        if first["type"] == "probe":
            self.enter("probe", first["engine"])
            p = load_engine(first["engine"]).probe()
            self.channel.send({"type": "probe-result", **p})
            return
        if first["type"] == "peak":
            self.enter("peak", first["engine"])
            engine = load_engine(first["engine"])
            if not hasattr(engine, "peak"):
                raise ValueError(f"engine '{first['engine']}' cannot measure peak figures")
            self.channel.send({"type": "peak-result", **engine.peak(PeakRequest.from_message(first))})
            return
        if first["type"] != "job":
            raise ValueError(f"expected a job or probe message, got '{first['type']}'")
        cell = first["cell"]
        task = cell.get("task", TASKS[0])
        training = task == "training"
        generating = task == "generate"
        if generating and ("generate" not in first or "generation" not in cell):
            raise ValueError("a generation job needs the cell's `generation` and the job's `generate` (prompt and logits files)")
        stream = cell.get("shapes") == "stream"
        if stream and "stream" not in first:
            raise ValueError("a stream cell's job needs its `stream` field (the stream file and its passes)")

        def at(phase):
            self.enter(phase, cell["engine"], cell["batchSize"])

        at("load")
        # The cold start's segments (harness/worker/protocol.ts ColdStartPhasesSchema; the schema rejects
        # any other name), each on this process's monotonic clock.
        clock = time.perf_counter_ns
        t = clock()
        engine = load_engine(cell["engine"])
        import_ns = clock() - t
        t = clock()
        weights, _ = load_tensors(first["weightsPath"])
        native = load_tensors(first["nativeWeightsPath"])[0] if "nativeWeightsPath" in first else None
        # A stream cell's inputs are its stream file's batches (and its fixed baseline), not inputsPath.
        inputs = load_tensors(first["stream"]["path"] if stream else first["inputsPath"])[0]
        labels = load_tensors(first["training"]["labelsPath"])[0]["labels"] if training else None
        weights_ns = clock() - t
        at("build")
        model_args = (cell["family"], cell["params"], cell["batchSize"], weights, native, cell["device"], cell["mode"], cell["threads"])
        if training:
            if not hasattr(engine, "build_trainer"):
                raise ValueError(f"engine '{cell['engine']}' cannot train (its module has no build_trainer)")
            build, req = engine.build_trainer, TrainRequest(*model_args, recipe=first["training"], reference=first["training"].get("reference"))
        elif generating:
            if not hasattr(engine, "build_generator"):
                raise ValueError(f"engine '{cell['engine']}' cannot generate (its module has no build_generator)")
            build, req = engine.build_generator, GenerateRequest(*model_args, generation=cell["generation"])
        else:
            # FWBENCH_FAULT=precision-fallback@build: the engine skips its precision mechanism (test only).
            plant = self.planted == "precision-fallback"
            build, req = engine.build, BuildRequest(*model_args, stream=stream, precision=cell.get("precision", PRECISIONS[0]), plant_precision_fallback=plant)
        t = clock()
        model = build(req)
        build_ns = clock() - t
        del req, model_args, weights, native
        phases = {"importMs": import_ns / 1e6, "weightsMs": weights_ns / 1e6, "buildMs": build_ns / 1e6}
        if training:
            self.train(first, model, inputs, labels, phases, at)
        elif generating:
            self.generate(first, model, phases, at)
        elif stream:
            self.infer_stream(first, model, inputs, phases, at)
        else:
            self.infer(first, model, inputs, phases, at)
        at("memory")
        device_peak = model.peak_device_bytes()
        model.dispose()
        self.channel.send({"type": "memory", "peakHostBytes": peak_host_bytes(), **({} if device_peak is None else {"peakDeviceBytes": device_peak})})

    def compile_and_announce(self, model, feed, phases):
        """Inside the model's session: the mode's compile step on `feed` (the cold start's compile
        segment), then `built`."""
        if model.compiles:
            # Inside the session: torch.compile guards on grad mode, so a graph compiled
            # outside inference_mode would be compiled again by the first run.
            t = time.perf_counter_ns()
            model.compile(feed)
            phases["compileMs"] = (time.perf_counter_ns() - t) / 1e6
        self.channel.send({"type": "built", "phases": phases, "settings": model.settings})

    def infer(self, first, model, inputs, phases, at):
        """An inference cell from its build on: compile (modes that have one), parity, then measure when told to."""
        clock = time.perf_counter_ns
        t = clock()
        feed = model.prepare(inputs)
        prepare_ns = clock() - t
        with model.session():
            self.compile_and_announce(model, feed, phases)
            at("parity")
            t = clock()
            out = model.run(feed)
            first_ns = prepare_ns + clock() - t
            batch = first["cell"]["batchSize"]
            # Evidence of the precision is asked for only where it is judged (a reduced precision):
            # gathering it (a traced graph, XLA's HLO) takes time between the first run and this
            # message, which an fp32 cell's cold start would otherwise count as protocol messages.
            used = model.precision_used() if first["cell"].get("precision", PRECISIONS[0]) != PRECISIONS[0] else None
            self.channel.send(
                {
                    "type": "parity",
                    "firstRunMs": first_ns / 1e6,
                    "shape": [batch, out.size // batch],
                    "values": out.ravel().tolist(),
                    **({} if used is None else {"precision": used}),
                }
            )
            self.measure_if_told(first, lambda: model.run(feed), at)

    def infer_stream(self, first, model, tensors, phases, at):
        """A shape-stream cell from its build on (harness/worker/protocol.ts, the job's `stream`):
        every batch prepared outside timing, compile on the first, the cold pass (stream-parity);
        when told to continue, the warm passes (passes), then the usual timed loop on the
        fixed-shape baseline (samples)."""
        spec = first["stream"]
        feeds = [model.prepare({"tokens": tensors[f"tokens.{i}"], "lengths": tensors[f"lengths.{i}"]}) for i in range(spec["batches"])]
        with model.session():
            self.compile_and_announce(model, feeds[0], phases)
            at("parity")
            pass_ns, outputs = stream_pass(model, feeds)
            self.channel.send(
                {"type": "stream-parity", "passNs": pass_ns, "outputs": [out.ravel().tolist() for out in outputs], "compiles": model.compile_count()}
            )
            del outputs
            if not self.told_to_continue():
                return
            at("measure")
            self.channel.send({"type": "passes", **warm_passes(model, feeds, spec, first["measure"])})
            # The reference's stream file has no fixed baseline; it is never told to continue.
            if "fixed.tokens" not in tensors:
                raise ValueError(f"{spec['path']} has no fixed.tokens (a reference's stream file): a stream cell's file needs its fixed-shape baseline")
            fixed = model.prepare({"tokens": tensors["fixed.tokens"], "lengths": tensors["fixed.lengths"]})
            self.timed_loop(first, lambda: model.run(fixed), at)

    def train(self, first, trainer, inputs, labels, phases, at):
        """A training cell from its build on: the parity steps (the first one, which includes any
        compilation, timed as firstStepMs; their losses sent, their tensors written to the job's
        parityPath), then measure when told to. No compileMs: compiling happens inside the first step."""
        clock = time.perf_counter_ns
        recipe = first["training"]
        self.channel.send({"type": "built", "phases": phases, "settings": trainer.settings})
        at("parity")
        with trainer.session():
            t = clock()
            feed = trainer.prepare(inputs, labels)
            prepare_ns = clock() - t
            # Names per harness/worker/protocol.ts TRAIN_PARITY_TENSORS: every parity step's
            # gradients and the state after it (the orchestrator replays the optimizer on them);
            # the float64 reference also writes its starting state (in Keras' parametrisation an
            # LSTM's biases start merged), so updates are taken from what it trained.
            tensors = {f"step0/{name}": a for name, a in trainer.state().items()} if recipe.get("reference") else {}
            losses = []
            for k in range(1, recipe["paritySteps"] + 1):
                t = clock()
                loss, grads = trainer.step(feed, True)
                if k == 1:
                    first_ns = prepare_ns + clock() - t
                losses.append(loss)
                tensors.update({f"grad{k}/{name}": g for name, g in grads.items()})
                tensors.update({f"step{k}/{name}": a for name, a in trainer.state().items()})
            cell = first["cell"]
            meta = {"engine": cell["engine"], "mode": cell["mode"], "family": cell["family"], "steps": recipe["paritySteps"]}
            save_tensors(recipe["parityPath"], tensors, meta)
            del tensors, grads
            self.channel.send({"type": "train-parity", "firstStepMs": first_ns / 1e6, "losses": [float(v) for v in losses]})
            self.measure_if_told(first, lambda: trainer.step(feed, False), at)

    def generate(self, first, gen, phases, at):
        """A generation cell from its build on (harness/worker/protocol.ts, the job's `generate`): the
        prompts prepared outside timing, the cold generation (each step timed with the readback of
        its tokens, every step's logits written to logitsPath: `generate-parity`), then on continue
        the warm generations (`passes`). No compile segment: compiling happens inside the cold
        generation's steps."""
        spec = first["generate"]
        steps = first["cell"]["generation"]["newTokens"]
        self.channel.send({"type": "built", "phases": phases, "settings": gen.settings})
        feed = gen.prepare(load_tensors(spec["promptPath"])[0]["tokens"])
        runner = GenerationSteps(gen, feed)
        with gen.session():
            at("parity")
            # FWBENCH_FAULT=generation-skip@parity (tests only): a step made and dropped, as a loop off by one would.
            skip = self.planted == "generation-skip"
            clock = time.perf_counter_ns
            pass_ns, chosen, logits = [], [], []
            for i in range(steps):
                t = clock()
                tokens, step_logits = runner.step(i, True)
                pass_ns.append(clock() - t)
                if step_logits is None:
                    raise ValueError(f"generation step {i} returned no logits though the parity run asked for them")
                chosen.append(tokens)
                logits.append(step_logits)
                if skip and i == 1:
                    runner.step(2, False)
            cell = first["cell"]
            save_tensors(
                spec["logitsPath"], {"logits": np.stack(logits).astype(np.float32)}, {"engine": cell["engine"], "mode": cell["mode"], "family": cell["family"]}
            )
            rows = np.stack(chosen, axis=1)
            del logits
            self.channel.send({"type": "generate-parity", "passNs": pass_ns, "tokens": rows.astype(int).tolist(), "compiles": gen.compile_count()})
            if not self.told_to_continue():
                return
            at("measure")
            self.channel.send({"type": "passes", **warm_passes(runner, range(steps), spec, first["measure"])})

    def told_to_continue(self):
        """Waits for the parity verdict: True on `continue`, False on `stop`."""
        return self.channel.receive()["type"] == "continue"

    def timed_loop(self, first, iteration, at):
        """Warm-up and the timed loop of `iteration`, then `samples`."""
        at("warmup")
        self.channel.send({"type": "samples", **measure(iteration, first["measure"], on_timed_loop=lambda: at("measure"))})

    def measure_if_told(self, first, iteration, at):
        """Waits for the parity verdict; on `continue`, warm-up and the timed loop of `iteration`, then `samples`."""
        if self.told_to_continue():
            self.timed_loop(first, iteration, at)


class GenerationSteps:
    """A generator seen as a stream whose batches are the steps of one generation (step 0 the
    prefill, every later step a decode), so the warm generations are `warm_passes` over it."""

    def __init__(self, gen, feed):
        self.gen = gen
        self.feed = feed

    def step(self, i, want_logits):
        return self.gen.prefill(self.feed, want_logits) if i == 0 else self.gen.decode(want_logits)

    def run(self, i):
        return self.step(i, False)

    def compile_count(self):
        return self.gen.compile_count()


def stream_pass(model, feeds, clock=time.perf_counter_ns):
    """One pass over a stream: each prepared batch run once, in order, timed one by one (each time
    includes the readback of its logits). Returns (times in ns, logits)."""
    times, outputs = [], []
    for feed in feeds:
        t = clock()
        out = model.run(feed)
        times.append(clock() - t)
        outputs.append(out)
    return times, outputs


def warm_passes(model, feeds, spec, settings, clock=time.perf_counter_ns, watch=watch_load):
    """The warm passes over a stream (harness/worker/protocol.ts): pass after pass until at least
    spec.minPasses passes and settings.minTimeMs, stopping at spec.maxPasses or settings.maxTimeMs
    (after one pass at least). Returns the `passes` fields, with the CPU accounting of the
    passes as the timed loop's `samples` has it (`load`)."""
    load_of_passes = watch() if watch else None
    passes = []
    start = clock()
    while True:
        passes.append(stream_pass(model, feeds, clock)[0])
        elapsed_ms = (clock() - start) / 1e6
        enough = len(passes) >= spec["minPasses"] and elapsed_ms >= settings["minTimeMs"]
        if enough or len(passes) >= spec["maxPasses"] or elapsed_ms >= settings["maxTimeMs"]:
            break
    return {"passesNs": passes, "compiles": model.compile_count(), **({"load": load_of_passes()} if load_of_passes else {})}


def die_with_orchestrator():
    """Asks Linux to SIGKILL this runner when the orchestrator dies (even of kill -9): nobody would
    read its cell, and a runner left measuring would skew the cells of a resumed run."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # not Linux: the runner ends when it next writes to the closed channel
    if os.getppid() == 1:
        os._exit(1)  # the orchestrator died before the request took effect


def main():
    die_with_orchestrator()
    channel = Channel(socket.socket(fileno=3))
    worker = Worker(channel)
    code = 0
    try:
        worker.fault = parse_fault(os.environ.get("FWBENCH_FAULT"))
        worker.run()
        channel.send({"type": "done"})
    except Exception as e:  # noqa: BLE001 - every failure becomes an `error` message; the orchestrator classifies it
        unavailable = isinstance(e, EngineUnavailable)
        # The class name says what kind of failure it was (MemoryError, a framework's OOM error...).
        # numpy's allocation failure is a private MemoryError subclass: name the public class.
        name = "MemoryError" if isinstance(e, MemoryError) else type(e).__name__
        message = str(e) if unavailable else f"{name}: {e}" if str(e) else name
        msg = {"type": "error", "phase": worker.phase, "message": message, "stack": traceback.format_exc()}
        if unavailable:
            msg.update(unavailable=True, fix=e.fix)
        code = 0 if unavailable else 1
        try:
            channel.send(msg)
        except OSError:
            pass  # the orchestrator is gone; the exit status still says why
    finally:
        channel.close()
        sys.stdout.flush()
        sys.stderr.flush()
        # Skip interpreter teardown: framework thread pools can hang or crash at exit, and the
        # protocol is already complete (the Node worker calls process.exit for the same reason).
        os._exit(code)
