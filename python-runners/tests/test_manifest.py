"""The Python side against results/schema/manifest.json, the identity lists generated from the
TypeScript declarations (tests/cli-detect-list-export.test.ts keeps that file current): each
Python engine has a module for every workload family and a step for every mode the manifest lists
for it, and nothing else; the framework packages do not hide the frameworks they are named after."""

import sys
from pathlib import Path

import pytest

from fwbench_runner import manifest, runner
from fwbench_runner.engine import BuildRequest, devices_here

PYTHON_ENGINES = manifest.python_engines()


def test_the_runner_runs_exactly_the_python_engines_of_the_manifest():
    assert PYTHON_ENGINES and list(runner.ENGINES) == PYTHON_ENGINES


@pytest.mark.parametrize("engine_id", PYTHON_ENGINES)
def test_each_engine_has_a_module_per_family_and_a_step_per_mode_of_the_manifest(engine_id):
    engine = runner.load_engine(engine_id)
    assert list(engine.FAMILIES) == list(manifest.FAMILIES)
    assert list(engine.MODES) == manifest.ENGINES[engine_id]["modes"]
    # Every family module lives in the engine's package, named after its family.
    assert [m.__name__ for m in engine.FAMILIES.values()] == [f"{engine.__name__}.{name}" for name in manifest.FAMILIES]


@pytest.mark.parametrize("engine_id", PYTHON_ENGINES)
def test_an_unknown_family_or_mode_is_an_error_naming_the_valid_ones_not_another_model(engine_id):
    engine = runner.load_engine(engine_id)
    fields = {"family": "rnn", "params": {}, "batch_size": 1, "weights": {}, "native_weights": {}, "device": "cpu", "mode": "eager", "threads": 1}
    request = lambda **kw: BuildRequest(**{**fields, **kw})  # noqa: E731
    with pytest.raises(ValueError, match=rf"^{engine_id}: unknown workload family 'gru'; valid: {', '.join(manifest.FAMILIES)}$"):
        engine.build(request(family="gru"))
    with pytest.raises(ValueError, match=rf"^{engine_id}: unknown mode 'jit'; valid: {', '.join(manifest.ENGINES[engine_id]['modes'])}$"):
        engine.build(request(mode="jit"))


def test_the_framework_packages_do_not_shadow_the_frameworks():
    import tensorflow
    import torch

    from fwbench_runner import tensorflow as tensorflow_engine
    from fwbench_runner import torch as torch_engine

    runners = Path(runner.__file__).parent
    for framework, engine in ((torch, torch_engine), (tensorflow, tensorflow_engine)):
        assert runners not in Path(framework.__file__).parents
        assert engine.__name__ == f"fwbench_runner.{framework.__name__}" and sys.modules[framework.__name__] is framework


def test_devices_come_from_the_manifest():
    assert devices_here("torch", cuda_usable=True) == manifest.ENGINES["torch"]["devices"]
    assert devices_here("torch", cuda_usable=False) == [d for d in manifest.DEVICES if d != "cuda"]
