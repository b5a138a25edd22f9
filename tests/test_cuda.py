"""The engine on CUDA: each test runs on CPU and, marked `cuda`, on a GPU (skipped without one, see conftest.py).

`pytest -m cuda tests/test_cuda.py` is what benchmarks/gpu/h200_proof.py runs on a GPU machine. On a GPU every
result is compared with the CPU's: projections bit for bit, SLR/ADMM gradients and updates within fp32 tolerance,
and bf16 / fp16 (GradScaler) training keeps the masks exact. The CPU variants run the same bodies in the normal suite,
against CPU-side references, so none of this code waits for a GPU to be exercised.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch

from harness.artifacts import load_pruned

from harness.amp import AmpStepper
from harness.methods import ADMM, SLR, MaskedRetrain
from harness.projection import batched_topk_masks, project, topk_mask, topk_masks
from harness.runner import RunConfig, run
from harness.sparsity import SparsityPlan, kept_count
from harness.tasks import TaskConfig, build_task

ROOT = Path(__file__).resolve().parent.parent
DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=pytest.mark.cuda)]


# ---- projection ---------------------------------------------------------------------------------------------------
def _projection_inputs() -> tuple[list[torch.Tensor], list[float]]:
    """Ties at the threshold (few distinct levels), equal-size groups, a 2M-entry tensor (multi-block top-k on a GPU),
    and the keep-all / keep-none cases."""
    g = torch.Generator().manual_seed(0)
    xs = [torch.randint(-3, 4, (64, 32, 3, 3), generator=g).float() * 0.1 for _ in range(3)]
    xs += [torch.randn(2_000_003, generator=g), torch.full((7, 9), -0.25), torch.randn(10, generator=g),
           torch.randn(33, generator=g)]
    return xs, [0.9, 0.5, 0.99, 0.9, 0.6, 0.0, 1.0]


@pytest.mark.parametrize("device", DEVICES)
def test_projection_on_device_equals_cpu(device):
    xs, ratios = _projection_inputs()
    want = [topk_mask(x, r) for x, r in zip(xs, ratios)]  # CPU: numpy partition + index tie-break
    dev = [x.to(device) for x in xs]
    for got in ([topk_mask(x, r) for x, r in zip(dev, ratios)], topk_masks(dev, ratios), batched_topk_masks(dev, ratios)):
        for g, w in zip(got, want):
            assert g.device.type == device and torch.equal(g.cpu(), w)
    for x, xd, r in zip(xs, dev, ratios):  # the reference code's numpy-percentile projection
        z, m = project(x, r, "percentile")
        zd, md = project(xd, r, "percentile")
        assert torch.equal(zd.cpu(), z) and torch.equal(md.cpu(), m)


# ---- SLR / ADMM penalty gradient and updates ----------------------------------------------------------------------
def _small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3),
                               torch.nn.Flatten(), torch.nn.Linear(32 * 4 * 4, 10))


def _attached(method, device: str):
    model = _small_model().to(device)
    plan = SparsityPlan.uniform(model, ["0.weight", "2.weight", "4.weight"], 0.8)
    method.attach(model, plan)
    return model, method


def _drive(model, method, steps: int = 3) -> list[dict[str, torch.Tensor]]:
    """Epochs 1-2 with fixed losses and gradients: exercises the penalty gradient and one dual/Z update."""
    grads = []
    for epoch in (1, 2):
        method.on_epoch_start(epoch)
        for b in range(steps):
            method.on_batch_start(epoch, b)
            for i, p in enumerate(model.parameters()):  # the same deterministic "task gradient" on every device
                p.grad = torch.full_like(p, 0.01 * (i + 1))
            method.after_backward()
            grads.append({n: p.grad.detach().cpu().clone() for n, p in model.named_parameters()})
            method.observe_loss(torch.tensor(1.0 / (epoch + b), device=p.device))
            with torch.no_grad():
                for p in model.parameters():
                    p.sub_(0.1 * p.grad)
        method.on_epoch_end(epoch)
    return grads


METHODS = {"slr-paper": lambda: SLR(mode="paper"), "slr-reference": lambda: SLR(mode="reference"),
           "admm": lambda: ADMM(mode="paper")}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_penalty_gradient_and_updates_on_device_equal_cpu(device, name):
    model, method = _attached(METHODS[name](), device)
    # the fused gradient add equals autograd's gradient of (rho/2)||W - Z + U||^2 on the device itself
    for t in method.tensors:
        t.u = torch.randn_like(t.u) * 0.01
    method.refresh_targets()
    w = [t.param.detach().clone().requires_grad_(True) for t in method.tensors]
    sum(0.5 * method.rho * ((wi - t.z + t.u) ** 2).sum() for wi, t in zip(w, method.tensors)).backward()
    for t in method.tensors:
        t.param.grad = None
    method.after_backward()
    for wi, t in zip(w, method.tensors):
        torch.testing.assert_close(t.param.grad, wi.grad, rtol=1e-5, atol=1e-7)
    # a full run of hooks on the device matches the same run on the CPU
    model_d, method_d = _attached(METHODS[name](), device)
    model_c, method_c = _attached(METHODS[name](), "cpu")
    grads_d, grads_c = _drive(model_d, method_d), _drive(model_c, method_c)
    for gd, gc in zip(grads_d, grads_c):
        for n in gc:
            torch.testing.assert_close(gd[n], gc[n], rtol=1e-5, atol=1e-6)
    assert len(method_d.updates) == len(method_c.updates) == 1
    for key, value in method_c.updates[0].items():
        if isinstance(value, float):
            assert method_d.updates[0][key] == pytest.approx(value, rel=1e-5, abs=1e-8), key
    for td, tc in zip(method_d.tensors, method_c.tensors):
        for key, value in tc.state().items():
            torch.testing.assert_close(td.state()[key].cpu(), value, rtol=1e-5, atol=1e-6)
        assert int(((td.z != 0).cpu() != (tc.z != 0)).sum()) == 0  # the same sparsity pattern


# ---- mixed precision keeps masks exact ----------------------------------------------------------------------------
def _assert_masks_exact(rec: dict) -> None:
    """Every pruned tensor of the saved model is zero off its mask and keeps exactly n - floor(n*p) entries."""
    assert rec["status"] == "completed", rec.get("error")
    run_dir = Path(rec["artifacts"]["dir"])
    weights, masks = load_pruned(run_dir / "pruned_model.safetensors")
    for name, ratio in rec["compression"]["prune_ratios"].items():
        w, m = weights[name], masks[name]
        assert int(m.sum()) == kept_count(m.numel(), ratio), name
        assert not w[~m].any(), f"{name}: pruned entries regrew"


def _runs(cpu_amp: str) -> list:
    """(device, amp) pairs: both precisions on a GPU; on a CPU one of them (tests/test_runner.py runs the other), since
    a runner-level run there costs seconds."""
    return [pytest.param("cpu", cpu_amp, id=f"cpu-{cpu_amp}")] + [
        pytest.param("cuda", amp, id=f"cuda-{amp}", marks=pytest.mark.cuda) for amp in ("bf16", "fp16")]


@pytest.mark.parametrize("device,amp", _runs("fp16"))
def test_digits_mixed_precision_run_keeps_masks_exact(device, amp, workdir):
    weights = workdir / "digits.pth"
    torch.save(build_task("digits", TaskConfig(model="cnn")).build_model().state_dict(), weights)
    rec = run(RunConfig(task="digits", method="slr", rate=4.0, amp=amp, device=device, weights=str(weights),
                        epochs=2, retrain_epochs=1, check_every=1, max_steps=3), log=lambda s: None)
    _assert_masks_exact(rec)
    assert rec["provenance"]["device"]["device"].startswith(device) and rec["config"]["amp"] == amp


@pytest.mark.parametrize("device,amp", _runs("bf16"))
def test_tiny_ufld_mixed_precision_run_keeps_masks_exact(device, amp, tusimple_root, workdir, one_thread):
    rec = run(RunConfig(task="tusimple", model="ufld_resnet18", method="admm", rate=4.21, amp=amp, device=device,
                        data=str(tusimple_root), pretrain_epochs=1, epochs=2, retrain_epochs=1, check_every=2,
                        batch_size=3, max_steps=1, checkpoint_every=0,
                        options={"input_size": [64, 160], "griding": 9}), log=lambda s: None)
    _assert_masks_exact(rec)


@pytest.mark.parametrize("device", DEVICES)
def test_fp16_gradscaler_step_keeps_masks_and_skips_overflow(device):
    """The fp16 step with a GradScaler: an overflowing first step is skipped (weights unchanged, masks exact), the
    next steps train; the penalty gradient is added to unscaled gradients."""
    model = _small_model().to(device)
    plan = SparsityPlan.uniform(model, ["0.weight", "2.weight"], 0.75)
    masks = {n: topk_mask(p, plan.ratios[n]) for n, p in model.named_parameters() if n in plan.ratios}
    method = MaskedRetrain(masks)
    method.attach(model, plan)
    stepper = AmpStepper(torch.device(device), "fp16")
    # 2^60 overflows fp16 gradients at once; the backoff then drops the scale to 2^10, where steps go through
    stepper.scaler = torch.amp.GradScaler(device, init_scale=2.0**60, backoff_factor=2.0**-50)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(8, 3, 8, 8, device=device)
    y = torch.randint(0, 10, (8,), device=device)
    before = copy.deepcopy(model.state_dict())
    scales = []
    for _ in range(3):
        with torch.autocast(device, dtype=torch.float16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        stepper.step(loss, opt, method)
        scales.append(stepper.scaler.get_scale())
        for name, m in masks.items():
            assert not dict(model.named_parameters())[name].detach()[~m].any()
    assert scales[0] < 2.0**60  # the first step overflowed and was skipped
    changed = [n for n, v in model.state_dict().items() if not torch.equal(v, before[n])]
    assert changed, "no step was taken after the overflow"


# ---- YOLOv3-tiny on synthetic COCO with AMP -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory) -> Path:
    from adapters.detection.coco_data import convert_coco

    spec = importlib.util.spec_from_file_location("make_synthetic_coco", ROOT / "data_scripts" / "make_synthetic_coco.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    base = tmp_path_factory.mktemp("coco")
    module.make_synthetic_coco(base / "raw", "2014", n_train=8, n_val=4, image_size=(96, 72), seed=1)
    convert_coco(base / "raw", base / "conv", "2014")
    return base / "conv"


@pytest.mark.parametrize("device", [pytest.param("cuda", id="cuda", marks=pytest.mark.cuda)])
def test_coco_yolov3_tiny_amp_smoke(device, coco_dir, workdir):
    """Ultralytics' trainer with the engine's hooks under fp16 AMP (its GradScaler) on a GPU. The CPU twin of this run
    is tests/test_detection.py's full run (Ultralytics turns AMP off on a CPU)."""
    rec = run(RunConfig(task="coco", model="yolov3-tiny", method="slr", rate=2.0, amp="fp16", device=device,
                        epochs=2, retrain_epochs=1, check_every=1, batch_size=4, data=str(coco_dir),
                        options={"imgsz": 64, "conf": 1e-5}, store=str(workdir / "store.sqlite"),
                        out=str(workdir / "runs")), log=lambda s: None)
    _assert_masks_exact(rec)
    assert rec["compression"]["achieved"]["conv"] == pytest.approx(2.0, rel=1e-3)
    assert rec["updates"] and all(isinstance(rec["metrics"][k], float) for k in ("dense", "hardpruned", "retrained"))
