"""quant.train: learning on the real digits, bit-identical reruns, resume, metrics, CLI, cache."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from quant import data as qdata
from quant import hooks
from quant import train as qtrain
from quant.learned import _freeze_act_clips


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """One torch thread: what the CLIs use, and much faster on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


FAST = {"lr": 0.05, "batch_size": 32, "seed": 0}
METRIC_KEYS = {"test_accuracy": float, "recipe": str, "w_bits": int, "a_bits": int,
               "model": str, "epochs": int, "seed": int, "train_loss": list, "time_s": float,
               "test_accuracy_curve": list, "layers": list, "lr": float, "batch_size": int}


@pytest.fixture(scope="module")
def fp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, qtrain.TrainResult]:
    """Two epochs of full-precision digits_cnn, shared by the tests below."""
    out = tmp_path_factory.mktemp("fp")
    return out, qtrain.train("digits_cnn", "fp32", 32, 32, epochs=2, out=out, **FAST)


def _accuracy(model: torch.nn.Module, ds: qdata.ImageDataset) -> float:
    """Independent evaluation: one batch, argmax, compare."""
    model.eval()
    with torch.no_grad():
        return int((model(ds.images).argmax(1) == ds.targets).sum()) / len(ds)


def test_fp_training_learns_the_digits(fp_run: tuple[Path, qtrain.TrainResult]) -> None:
    out, res = fp_run
    test = qdata.digits("test")
    assert res.test_accuracy > 0.85  # chance is 0.10
    assert res.test_accuracy == pytest.approx(_accuracy(res.model, test), abs=1e-9)
    # The loss falls from epoch to epoch and the first-epoch loss starts near ln(10).
    assert res.metrics["train_loss"][1] < res.metrics["train_loss"][0] < 2.4
    saved = json.loads((out / qtrain.METRICS).read_text())
    for key, typ in METRIC_KEYS.items():
        assert isinstance(saved[key], typ), key
    assert 0.0 <= saved["test_accuracy"] <= 1.0
    assert saved["recipe"] == "fp32"
    assert saved["w_bits"] == 32
    assert saved["model"] == "digits_cnn"
    assert len(saved["train_loss"]) == saved["epochs"] == 2
    assert saved["test_accuracy"] == res.metrics["test_accuracy"]
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_same_seed_is_bit_identical_other_seed_differs(
        fp_run: tuple[Path, qtrain.TrainResult]) -> None:
    _, first = fp_run
    again = qtrain.train("digits_cnn", "fp32", 32, 32, epochs=2, **FAST)
    assert again.metrics["train_loss"] == first.metrics["train_loss"]
    for (k, a), b in zip(first.model.state_dict().items(), again.model.state_dict().values()):
        assert torch.equal(a, b), k
    other = qtrain.train("digits_cnn", "fp32", 32, 32, epochs=1, **(FAST | {"seed": 1}))
    assert other.metrics["train_loss"][0] != first.metrics["train_loss"][0]


def _interrupt_at_epoch(n: int, real: Callable[[torch.nn.Module, int], None]
                        ) -> Callable[[torch.nn.Module, int], None]:
    """An ``on_epoch_start`` hook that stops training like Ctrl-C at the start of epoch ``n``."""
    def hook(model: torch.nn.Module, epoch: int) -> None:
        if epoch == n:
            raise KeyboardInterrupt
        real(model, epoch)

    return hook


def test_resume_after_interruption_matches_uninterrupted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fp_run: tuple[Path, qtrain.TrainResult]) -> None:
    _, straight = fp_run
    real = hooks.on_epoch_start
    monkeypatch.setattr(hooks, "on_epoch_start", _interrupt_at_epoch(1, real))
    with pytest.raises(KeyboardInterrupt):
        qtrain.train("digits_cnn", "fp32", 32, 32, epochs=2, out=tmp_path, **FAST)
    ckpt = torch.load(tmp_path / qtrain.CHECKPOINT, weights_only=True)
    assert ckpt["epoch"] == 1
    assert not (tmp_path / qtrain.METRICS).exists()
    monkeypatch.setattr(hooks, "on_epoch_start", real)
    resumed = qtrain.train("digits_cnn", "fp32", 32, 32, epochs=2, out=tmp_path, **FAST)
    assert resumed.metrics["train_loss"] == straight.metrics["train_loss"]
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    # A finished run is reloaded, not retrained; a changed configuration is refused.
    stamp = (tmp_path / qtrain.CHECKPOINT).stat().st_mtime_ns
    again = qtrain.train("digits_cnn", "fp32", 32, 32, epochs=2, out=tmp_path, **FAST)
    assert again.metrics == resumed.metrics
    assert (tmp_path / qtrain.CHECKPOINT).stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="lr"):
        qtrain.train("digits_cnn", "fp32", 32, 32, epochs=2, out=tmp_path,
                     **(FAST | {"lr": 0.1}))


def test_quantized_resume_and_reload_restore_state_outside_the_state_dict(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fp_run: tuple[Path, qtrain.TrainResult]) -> None:
    """LSQ decides its activation signedness at calibration (a Python attribute, not a tensor):
    resuming and reloading must still reproduce the uninterrupted run exactly."""
    fp_dir, _ = fp_run
    kw = {"epochs": 2, "lr": 0.01, "batch_size": 32, "init_from": fp_dir}
    straight = qtrain.train("digits_cnn", "lsq", 3, 3, **kw)
    real = hooks.on_epoch_start
    monkeypatch.setattr(hooks, "on_epoch_start", _interrupt_at_epoch(1, real))
    with pytest.raises(KeyboardInterrupt):
        qtrain.train("digits_cnn", "lsq", 3, 3, out=tmp_path, **kw)
    monkeypatch.setattr(hooks, "on_epoch_start", real)
    resumed = qtrain.train("digits_cnn", "lsq", 3, 3, out=tmp_path, **kw)
    assert resumed.metrics["train_loss"] == straight.metrics["train_loss"]
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    test = qdata.digits("test")
    assert _accuracy(qtrain.load_run(tmp_path).model, test) == straight.test_accuracy


def test_load_run_rebuilds_the_trained_model(fp_run: tuple[Path, qtrain.TrainResult]) -> None:
    out, res = fp_run
    loaded = qtrain.load_run(out)
    assert _accuracy(loaded.model, qdata.digits("test")) == pytest.approx(res.test_accuracy)


def test_quantized_fine_tune_uses_fp_weights_and_every_hook(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fp_run: tuple[Path, qtrain.TrainResult]) -> None:
    fp_dir, fp = fp_run
    calls: dict[str, list] = {"calibrate": [], "epoch": [], "after": [], "reg": []}
    real = {n: getattr(hooks, n) for n in ("calibrate", "on_epoch_start", "after_backward",
                                           "regularization_loss")}
    monkeypatch.setattr(hooks, "calibrate",
                        lambda m, x: calls["calibrate"].append(x.shape) or real["calibrate"](m, x))
    monkeypatch.setattr(hooks, "on_epoch_start",
                        lambda m, e: calls["epoch"].append(e) or real["on_epoch_start"](m, e))
    monkeypatch.setattr(hooks, "after_backward",
                        lambda m: calls["after"].append(1) or real["after_backward"](m))
    monkeypatch.setattr(hooks, "regularization_loss",
                        lambda m: calls["reg"].append(1) or real["regularization_loss"](m))
    config = qtrain.TrainConfig(model="digits_cnn", recipe="pact_sawb", w_bits=4, a_bits=4,
                                epochs=2, lr=0.01, batch_size=32, init_from=str(fp_dir))
    before = qtrain.build_model(config, 10)
    fp_state = fp.model.state_dict()
    for k, v in before.state_dict().items():
        if k in fp_state:  # every FP tensor arrives in the quantized model unchanged
            assert torch.equal(v, fp_state[k]), k
    res = qtrain.train("digits_cnn", "pact_sawb", 4, 4, epochs=2, lr=0.01, batch_size=32,
                       init_from=fp_dir)
    steps = 2 * len(DataLoader(qdata.digits("train"), batch_size=32))
    # one calibration pass, then one BN-neutral pass per PACT level for its first-batch maximum
    # (the procedure's act_clip_init="max")
    assert calls["calibrate"] == [torch.Size([32, 1, 8, 8])] * (1 + 3)
    assert calls["epoch"] == [0, 1]
    assert len(calls["after"]) == len(calls["reg"]) == steps
    assert res.test_accuracy > 0.85
    # metrics["layers"] agrees with what the workload extractor reads off the trained model.
    from workloads import extract

    layers = extract(res.model, input_shape=(1, 8, 8), default_bits=16).layers
    recorded = {r["name"]: r["weight_bits"] for r in res.metrics["layers"]}
    compute = layers[layers["op"].isin(["conv", "linear"])]
    for _, row in compute.iterrows():
        assert row["w_bits"] == (recorded[row["module"]] or 16), row["module"]
    assert sorted(compute["w_bits"]) == [4, 4, 16, 16]  # first/last layers stay FP (pact_sawb)


def test_init_from_a_mismatched_checkpoint_is_refused(
        tmp_path: Path, fp_run: tuple[Path, qtrain.TrainResult]) -> None:
    fp_dir, _ = fp_run
    with pytest.raises(ValueError, match="shape"):
        qtrain.train("digits_cnn", "fp32", 32, 32, epochs=1, width=2, init_from=fp_dir, **FAST)
    with pytest.raises(FileNotFoundError, match="init_from"):
        qtrain.train("digits_cnn", "fp32", 32, 32, epochs=1, init_from=tmp_path / "nope",
                     **FAST)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"w_bits": 0}, "w_bits"), ({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"),
    ({"batch_size": 0}, "batch_size"), ({"recipe": "pactt"}, "recipe"),
    ({"model_name": "lenet"}, "model"), ({"data": "mnist"}, "data"),
    ({"optimizer": "lbfgs"}, "optimizer"), ({"device": "tpu:x"}, "device"),
    ({"fixed_act_clip": -1.0}, "fixed_act_clip"), ({"clip_decay": -1.0}, "clip_decay")])
def test_bad_arguments_raise_value_error_naming_the_field(kwargs: dict, field: str) -> None:
    args = {"model_name": "digits_cnn", "recipe": "fp32", "w_bits": 32, "a_bits": 32,
            "epochs": 1} | FAST | kwargs
    with pytest.raises(ValueError, match=field):
        qtrain.train(**args)


def test_synthetic_and_cifar_data_paths(tmp_path: Path) -> None:
    res = qtrain.train("digits_cnn", "fp32", 32, 32, epochs=1, data="synthetic", **FAST)
    assert res.test_accuracy > 0.5
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        qtrain.train("resnet20", "fp32", 32, 32, epochs=1, data="cifar10", data_root=tmp_path,
                     **FAST)
    rng = np.random.default_rng(0)
    for name in [*qdata.CIFAR10_TRAIN_FILES, "test_batch"]:  # the standard pickle format
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, 4).tolist()}
        (tmp_path / name).write_bytes(pickle.dumps(batch, protocol=2))
    res = qtrain.train("resnet20", "pact_sawb_fpsc", 2, 2, epochs=1, data="cifar10",
                       data_root=tmp_path, augment=True, **(FAST | {"batch_size": 8}))
    assert (res.metrics["train_size"], res.metrics["test_size"]) == (20, 4)
    assert res.metrics["data"] == "cifar10"
    assert res.metrics["augment"] is True
    shortcut = [r for r in res.metrics["layers"] if "shortcut" in r["name"]]
    assert shortcut  # resnet20 has projection shortcuts; fpsc keeps them full precision
    assert all(r["weight_bits"] is None for r in shortcut)


def test_fixed_act_clips_reproduce_the_pact_fig1_baselines(
        fp_run: tuple[Path, qtrain.TrainResult]) -> None:
    """"max": every clip sits exactly at its layer's largest input on the first batch (ReLU
    quantized over its full range, nothing clipped); a number: every clip equals it. Both stay
    frozen through training."""
    from quant.methods.pact import PACT

    config = qtrain.TrainConfig(model="digits_cnn", recipe="pact", w_bits=32, a_bits=2,
                                epochs=1, lr=0.05, batch_size=32, fixed_act_clip="max")
    model = qtrain.build_model(config, 10)
    _freeze_act_clips(model, config)
    train_set = qdata.digits("train")
    qtrain._prepare(model, config, train_set, torch.device("cpu"))
    pacts = [m for m in model.modules() if isinstance(m, PACT)]
    seen: dict[int, float] = {}
    handles = [q.register_forward_pre_hook(
        lambda m, a: seen.__setitem__(id(m), float(a[0].max()))) for q in pacts]
    first_x = next(iter(DataLoader(train_set, batch_size=32, shuffle=True,
                                   generator=torch.Generator().manual_seed(0))))[0]
    hooks.calibrate(model, first_x)  # a forward that leaves BatchNorm statistics alone
    for h in handles:
        h.remove()
    assert len(pacts) == 3
    for q in pacts:
        assert float(q.alpha) == pytest.approx(seen[id(q)], rel=1e-6)
        assert not q.alpha.requires_grad
    res = qtrain.train("digits_cnn", "pact", 32, 2, epochs=1, fixed_act_clip="max", **FAST)
    after = [float(m.alpha) for m in res.model.modules() if isinstance(m, PACT)]
    assert after == [float(q.alpha) for q in pacts]  # frozen: training did not move them
    one = qtrain.train("digits_cnn", "pact", 32, 2, epochs=1, fixed_act_clip=1.0, **FAST)
    assert [float(m.alpha) for m in one.model.modules() if isinstance(m, PACT)] == [1.0] * 3
    with pytest.raises(ValueError, match="fixed_act_clip"):
        qtrain.train("digits_cnn", "lsq", 4, 4, epochs=1, fixed_act_clip=1.0, **FAST)


@pytest.mark.parametrize("argv", [
    ["--recipe", "nope", "--w-bits", "2", "--a-bits", "2"],
    ["--recipe", "fp32", "--w-bits", "0", "--a-bits", "2"],
    ["--recipe", "fp32", "--w-bits", "2"],
    ["--recipe", "fp32", "--w-bits", "2", "--a-bits", "2", "--epochs", "0"],
    ["--recipe", "fp32", "--w-bits", "2", "--a-bits", "2", "--data", "cifar10"]])
def test_cli_bad_arguments_exit_2_with_one_line(
        argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        qtrain.main([*argv, "--out", str(tmp_path), "--no-progress"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: ")
    assert not (tmp_path / qtrain.METRICS).exists()


def test_cli_end_to_end(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "quant.train", "--model", "digits_cnn", "--recipe", "fp32",
           "--w-bits", "32", "--a-bits", "32", "--epochs", "1", "--out", str(tmp_path),
           "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["test_accuracy"] > 0.5
    assert m["epochs"] == 1
    assert "test accuracy" in proc.stdout


def test_trained_digits_model_trains_once_then_reloads(tmp_path: Path) -> None:
    kw = {"fp_epochs": 1, "ft_epochs": 1}
    model = qtrain.trained_digits_model("lsq", 4, 4, tmp_path, **kw)
    runs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert runs == ["fp32-w32a32-s0", "lsq-w4a4-s0"]  # LSQ Sec. 3 fine-tunes from FP
    stamp = (tmp_path / runs[1] / qtrain.CHECKPOINT).stat().st_mtime_ns
    again = qtrain.trained_digits_model("lsq", 4, 4, tmp_path, **kw)
    assert (tmp_path / runs[1] / qtrain.CHECKPOINT).stat().st_mtime_ns == stamp
    test = qdata.digits("test")
    acc = json.loads((tmp_path / runs[1] / qtrain.METRICS).read_text())["test_accuracy"]
    assert _accuracy(model, test) == pytest.approx(acc)
    assert _accuracy(again, test) == pytest.approx(acc)
    # Per-layer bits (mixed precision, for the search) get their own cache entry.
    mixed = qtrain.trained_digits_result("pact_sawb", 4, 4, tmp_path, overrides={"features.3": 2},
                                         **kw)
    bits = {r["name"]: r["weight_bits"] for r in mixed.metrics["layers"]}
    assert (bits["features.3"], bits["features.7"]) == (2, 4)
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 3
