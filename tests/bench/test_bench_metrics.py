"""The benchmark metrics against values worked out by hand on arrays of a few voxels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from imagingsim.bench import metrics as m
from imagingsim.phantom.model import Label


def test_nrmse_rmse_and_aem_by_hand():
    truth = np.array([1.0, 2.0, 3.0, 0.0])
    image = np.array([1.0, 2.0, 5.0, 7.0])
    mask = np.array([True, True, True, False])
    # errors 0, 0, 2 over ||t|| = sqrt(1 + 4 + 9) = sqrt(14); the masked-out voxel is ignored
    assert m.nrmse(image, truth, mask) == pytest.approx(2.0 / math.sqrt(14.0), rel=1e-15)
    assert m.rmse(image, truth, mask) == pytest.approx(math.sqrt(4.0 / 3.0), rel=1e-15)
    # VOI means 8/3 against 6/3 = 2: |8/3 - 2| / 2 = 1/3
    assert m.aem(image, truth, mask) == pytest.approx(1.0 / 3.0, rel=1e-15)
    assert m.nrmse(truth, truth, mask) == 0.0
    assert m.nrmse(np.zeros(4), truth, mask) == 1.0  # doing nothing scores exactly 1


def test_contrast_recovery_and_background_variability_by_hand():
    hot = np.array([True, True, False, False, False, False])
    background = ~hot
    truth = np.array([4.0, 4.0, 1.0, 1.0, 1.0, 1.0])  # true contrast 4/1 - 1 = 3
    image = np.array([3.0, 3.0, 0.5, 1.5, 1.0, 1.0])  # 3/1 - 1 = 2: CRC 2/3
    assert m.contrast_recovery(image, truth, hot, background) == pytest.approx(2.0 / 3.0, rel=1e-15)
    assert m.contrast_recovery(truth, truth, hot, background) == pytest.approx(1.0, rel=1e-15)
    # background 0.5, 1.5, 1, 1: mean 1, sd (ddof 1) sqrt((0.25 + 0.25) / 3)
    assert m.background_variability(image, background) == pytest.approx(math.sqrt(0.5 / 3.0), rel=1e-15)
    flat = np.ones(6)
    assert math.isnan(m.contrast_recovery(image, flat, hot, background))  # no true contrast, no CRC


def test_bias_and_sd_over_realisations_by_hand():
    labels = np.array([Label.SOFT_TISSUE, Label.SOFT_TISSUE, Label.TUMOUR_VIABLE, Label.AIR], dtype=np.uint8)
    masks = m.voi_masks(labels)
    assert set(masks) == {"body", "muscle", "tumour", "tumour_rim"}
    truth = np.array([2.0, 2.0, 4.0, 0.0])
    images = [np.array([1.0, 3.0, 5.0, 9.0]), np.array([3.0, 1.0, 7.0, 9.0])]
    out = m.bias_and_sd(images, truth, masks)
    # mean image 2, 2, 6 (body): bias ||(0, 0, 2)|| / ||(2, 2, 4)|| = 2 / sqrt(24)
    assert out["bias_body"] == pytest.approx(2.0 / math.sqrt(24.0), rel=1e-15)
    # per-voxel sd (ddof 1) over the two: sqrt(2), sqrt(2), sqrt(2) -> sqrt(6) / sqrt(24) = 1/2
    assert out["sd_body"] == pytest.approx(0.5, rel=1e-15)
    # tumour VOI means 5 and 7 against 4: bias (6 - 4) / 4, sd sqrt(2) / 4
    assert out["bias_tumour"] == pytest.approx(0.5, rel=1e-15)
    assert out["sd_tumour"] == pytest.approx(math.sqrt(2.0) / 4.0, rel=1e-15)
    # muscle means are 2 and 2: no bias, no variance although each voxel varies
    assert out["bias_muscle"] == 0.0 and out["sd_muscle"] == 0.0
    same = m.bias_and_sd([truth, truth, truth], truth, masks)
    assert same["sd_body"] == 0.0 and same["bias_body"] == 0.0
    assert math.isnan(m.bias_and_sd([truth], truth, masks)["sd_body"])  # one realisation has no sd


def test_ssim_psnr_and_image_metrics():
    rng = np.random.default_rng(3)
    truth = rng.uniform(1.0, 2.0, (9, 9, 9))
    labels = np.full((9, 9, 9), Label.SOFT_TISSUE, dtype=np.uint8)
    labels[3:6, 3:6, 3:6] = Label.TUMOUR_VIABLE
    truth[3:6, 3:6, 3:6] *= 3.0
    masks = m.voi_masks(labels)
    perfect = m.image_metrics(truth, truth, masks)
    assert perfect["nrmse_body"] == 0.0 and perfect["crc"] == pytest.approx(1.0)
    assert perfect["ssim"] == pytest.approx(1.0) and math.isinf(perfect["psnr_db"])
    noisy = truth + rng.normal(0.0, 0.1, truth.shape)
    scored = m.image_metrics(noisy, truth, masks)
    # PSNR = 10 log10(range^2 / MSE), range of the truth over the body
    mse = np.mean((noisy - truth) ** 2)
    assert scored["psnr_db"] == pytest.approx(10 * math.log10(np.ptp(truth) ** 2 / mse), rel=1e-12)
    assert 0.0 < scored["ssim"] < 1.0
    assert scored["crc_error"] == pytest.approx(abs(1.0 - scored["crc"]))


def _ssim_map_by_hand(x, t, data_range, window):
    """Wang et al. (2004) eq. 13 with uniform windows and sample (co)variances, written out."""
    from scipy.ndimage import uniform_filter

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    n = window ** x.ndim
    mean = [uniform_filter(a, window) for a in (x, t, x * x, t * t, x * t)]
    ux, ut = mean[0], mean[1]
    vx, vt, cov = (n / (n - 1) * (mean[2] - ux * ux), n / (n - 1) * (mean[3] - ut * ut),
                   n / (n - 1) * (mean[4] - ux * ut))
    return (2 * ux * ut + c1) * (2 * cov + c2) / ((ux * ux + ut * ut + c1) * (vx + vt + c2))


def test_ssim_and_psnr_are_taken_over_the_body():
    rng = np.random.default_rng(11)
    labels = np.full((21, 11, 11), Label.AIR, dtype=np.uint8)  # air beyond a window's reach for x >= 12
    labels[2:9, 2:9, 2:9] = Label.SOFT_TISSUE
    labels[4:7, 4:7, 4:7] = Label.TUMOUR_VIABLE
    masks = m.voi_masks(labels)
    body = masks["body"]
    truth = np.where(body, 1.0, 0.0) + np.where(masks["tumour"], 3.0, 0.0)
    image = truth + np.where(body, rng.normal(0.0, 0.5, truth.shape), 0.0)
    scored = m.image_metrics(image, truth, masks)
    # data range 4 - 1 = 3 over the body; MSE over the body's 343 voxels only
    mse_body = float(np.mean((image[body] - truth[body]) ** 2))
    assert scored["psnr_db"] == pytest.approx(10.0 * math.log10(9.0 / mse_body), rel=1e-12)
    assert scored["ssim"] == pytest.approx(float(np.mean(_ssim_map_by_hand(image, truth, 3.0, 7)[body])), rel=1e-9)
    # noise in the air outside the body does not change the PSNR
    air_noise = image + np.where(~body, rng.normal(0.0, 0.5, truth.shape), 0.0)
    assert m.image_metrics(air_noise, truth, masks)["psnr_db"] == scored["psnr_db"]
    # the air far from the body (image = truth = 0: SSIM exactly 1) no longer dilutes the score
    full_map = _ssim_map_by_hand(image, truth, 3.0, 7)
    assert np.allclose(full_map[12:], 1.0, rtol=0.0, atol=1e-12)
    assert float(np.mean(full_map)) > scored["ssim"] + 0.005


def test_time_to_threshold_is_the_first_checkpoint_where_all_hold():
    checkpoints = [(1, 0.1, {"nrmse_body": 0.9, "aem_tumour": 0.05}),
                   (2, 0.2, {"nrmse_body": 0.4, "aem_tumour": 0.30}),
                   (3, 0.3, {"nrmse_body": 0.3, "aem_tumour": 0.10}),
                   (4, 0.4, {"nrmse_body": 0.2, "aem_tumour": 0.01})]
    assert m.time_to_threshold(checkpoints, {"nrmse_body": 0.5, "aem_tumour": 0.1}) == (3, 0.3)
    assert m.time_to_threshold(checkpoints, {"nrmse_body": 0.1}) is None
    assert m.time_to_threshold(checkpoints, {}) is None
    assert m.time_to_threshold(checkpoints, {"crc_error": 1.0}) is None  # an absent metric never holds
