"""CUDA-only checks (skipped on CPU machines): the fast path equals the reference math on the GPU."""

import pytest
import torch

from spot_tutorial import SPOT, get_preset

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_sdpa_and_bf16_agree_with_fp32_reference_on_cuda():
    torch.manual_seed(0)
    config = get_preset("tiny", init_method="embedding")
    reference = SPOT.from_config(config.replace(attention_impl="math")).cuda().eval()
    fast = SPOT.from_config(config.replace(attention_impl="sdpa")).cuda().eval()
    fast.load_state_dict(reference.state_dict())
    images = torch.randn(4, 3, 64, 64, device="cuda")
    with torch.inference_mode():
        ref, out = reference(images, orders="all"), fast(images, orders="all")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            half = fast(images, orders="all")
    torch.testing.assert_close(out.decoder_masks, ref.decoder_masks, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(half.decoder_masks.float(), ref.decoder_masks, atol=5e-2, rtol=0)
    assert abs(float(half.loss) - float(ref.loss)) / float(ref.loss) < 0.05


def test_metrics_on_gpu_equal_cpu():
    from spot_tutorial.evaluation.metrics import SegmentationMetrics

    masks = torch.rand(4, 5, 8, 8)
    target = torch.randint(0, 4, (4, 32, 32))
    results = []
    for device in ("cpu", "cuda"):
        meter = SegmentationMetrics()
        meter.update(masks.to(device), target.to(device))
        results.append(meter.compute())
    for key in ("fg_ari", "mbo_i", "miou"):
        assert results[0][key] == pytest.approx(results[1][key])
