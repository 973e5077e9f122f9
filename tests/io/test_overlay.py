"""PET/MRI fusion: overlay colours, RGB NIfTI, and the fusion derivative (totals kept within 1 %).

The 1 % bound is issue 5's acceptance bound (see tests/io/test_resample.py): the resampler is
exact to float rounding when the MRI field of view covers the PET activity.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from imagingsim.backend import get_backend
from imagingsim.grid import ImageGrid
from imagingsim.io.nifti import read_nifti
from imagingsim.io.overlay import fuse, hottest_voxel, overlay_montage, overlay_rgb
from imagingsim.io.png import write_png
from imagingsim.io.resample import volume_integral
from imagingsim.modalities.pet.fusion import write_pet_mri_fusion

PET_GRID = ImageGrid((16, 14, 12), (1.0, 1.0, 1.2), (-7.5, -6.5, -6.6))
MRI_GRID = ImageGrid((40, 36, 34), (0.45, 0.45, 0.5), (-8.6, -7.7, -8.1))  # finer, shifted, covers PET


def _axes(grid):
    return [
        (o + v * np.arange(n)).reshape([n if a == axis else 1 for a in range(3)])
        for axis, (n, v, o) in enumerate(zip(grid.shape, grid.voxel_size_mm, grid.origin_mm))
    ]


def _pet_frame(scale: float) -> np.ndarray:
    x, y, z = _axes(PET_GRID)
    organ = 800.0 * np.exp(-((x - 1.0) ** 2 + (y + 1.0) ** 2 + z**2) / 6.0)
    tumour = 3000.0 * (((x + 3.2) ** 2 + (y - 2.1) ** 2 + (z - 1.3) ** 2) < 1.5**2)
    return (scale * (organ + tumour) + 5.0).astype(np.float32)


def _mri_magnitude() -> np.ndarray:
    x, y, z = _axes(MRI_GRID)
    body = ((x / 7.5) ** 2 + (y / 6.5) ** 2 + (z / 7.5) ** 2) < 1.0
    return (body * (1.0 + 0.2 * np.cos(x))).astype(np.float32)


def _fake_subject(mri_times_h=(4.0, 24.0, 48.0)):
    """Scenario, phantom, PET (frames at 1, 4, 24 h) and MRI sessions as the writers see them."""
    scenario = SimpleNamespace(subject_id="01", name="fusion_test", seed=3)
    phantom = SimpleNamespace(grid=PET_GRID)
    frames = np.stack([_pet_frame(s) for s in (1.0, 0.7, 0.4)], axis=-1)
    pet = SimpleNamespace(
        tracer=SimpleNamespace(name="lipo", injection_time_h=0.0),
        images_bq_per_ml={"osem": frames, "fbp": frames * 1.1},
        frame_start_s=(3600.0, 4 * 3600.0, 24 * 3600.0),
        frame_duration_s=(600.0, 600.0, 900.0),
        decay_corrected=True,
    )
    magnitude = np.stack([np.stack([_mri_magnitude() * (1.0 - 0.1 * k), _mri_magnitude() * 0.5]) for k in range(3)])
    mri = SimpleNamespace(
        times_h=tuple(mri_times_h),
        time_labels=tuple(f"{t:g}h" for t in mri_times_h),
        magnitude=magnitude,  # (T, E, nx, ny, nz)
    )
    return scenario, phantom, pet, mri


# --- overlay -----------------------------------------------------------------------------


def test_overlay_is_uint8_deterministic_and_grey_without_activity():
    anatomy = _mri_magnitude()
    activity = np.zeros(anatomy.shape)
    rgb = overlay_rgb(anatomy, activity, anatomy_window=(0.0, 1.2))
    assert rgb.dtype == np.uint8 and rgb.shape == anatomy.shape + (3,)
    assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
    x, y, z = _axes(MRI_GRID)
    activity = 1000.0 * np.exp(-(x**2 + y**2 + z**2) / 4.0)
    first = overlay_rgb(anatomy, activity, anatomy_window=(0.0, 1.2))
    assert first.tobytes() == overlay_rgb(anatomy.copy(), activity.copy(), anatomy_window=(0.0, 1.2)).tobytes()
    assert first.min() >= 0 and first.max() <= 255
    centre = first[20, 18, 17]
    assert centre[0] > centre[2]  # hot: red above blue where the activity is


def test_overlay_hot_end_is_white_and_threshold_leaves_anatomy():
    anatomy = np.full((3,), 0.5)
    rgb = overlay_rgb(anatomy, np.array([0.0, 0.05, 1.0]), anatomy_window=(0.0, 1.0), activity_max=1.0, alpha=1.0)
    assert rgb[0].tolist() == rgb[1].tolist() == [128, 128, 128]  # below the 10 % threshold: grey
    assert rgb[2].tolist() == [255, 255, 255]


@pytest.mark.parametrize("kwargs", [{"alpha": 1.5}, {"anatomy_window": (1.0, 1.0)}, {"threshold": 1.0}])
def test_overlay_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        overlay_rgb(np.zeros(3), np.zeros(3), **kwargs)


# --- fuse and RGB NIfTI -------------------------------------------------------------------------


def test_fuse_keeps_the_total_activity():
    activity = _pet_frame(1.0)
    resampled, rgb, totals = fuse(activity, PET_GRID, _mri_magnitude(), MRI_GRID)
    assert resampled.shape == MRI_GRID.shape and resampled.dtype == np.float32
    assert rgb.shape == MRI_GRID.shape + (3,) and rgb.dtype == np.uint8
    assert totals["before_Bq"] == pytest.approx(volume_integral(activity, PET_GRID))
    assert totals["after_Bq"] == pytest.approx(volume_integral(resampled, MRI_GRID))
    assert abs(totals["ratio"] - 1.0) < 0.01


def _read_png(path):
    """Independent PNG decoding (zlib + filter 0 only, what png.py writes) to check the file."""
    import struct
    import zlib

    raw = Path(path).read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(raw):
        (length,) = struct.unpack(">I", raw[pos:pos + 4])
        kind, data = raw[pos + 4:pos + 8], raw[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", raw[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + data)
        chunks[kind] = chunks.get(kind, b"") + data
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2)
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, 1 + 3 * width)
    assert np.all(rows[:, 0] == 0)
    return rows[:, 1:].reshape(height, width, 3)


def test_png_round_trips_and_is_deterministic(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    path = write_png(tmp_path / "a.png", rgb)
    np.testing.assert_array_equal(_read_png(path), rgb)
    assert path.read_bytes() == write_png(tmp_path / "b.png", rgb.copy()).read_bytes()
    with pytest.raises(ValueError, match="uint8"):
        write_png(tmp_path / "c.png", rgb.astype(np.float32))


def test_montage_places_each_frame_in_a_radiological_column():
    nx, ny, nz = 4, 3, 5
    frames = [np.zeros((nx, ny, nz, 3), np.uint8) for _ in range(2)]
    frames[1][0, ny - 1, 2] = (255, 0, 0)  # frame 1: subject's far left (x = 0), most anterior, at z = 2
    picture = overlay_montage(frames, focus=(0, ny - 1, 2), separator_px=2)
    assert picture.shape == (ny + 2 + nz, 2 * nx + 2, 3)
    column = nx + 2  # frame 1 starts after frame 0 and a separator
    # Axial: anterior (high y) on the top row, the subject's left (low x) on the right edge.
    assert tuple(picture[0, column + nx - 1]) == (255, 0, 0)
    # Coronal (y = ny - 1): superior (high z) at the top; z = 2 is row nz - 1 - 2 below the axial panel.
    assert tuple(picture[ny + 2 + (nz - 1 - 2), column + nx - 1]) == (255, 0, 0)
    assert picture[:, :nx].max() == 0  # frame 0 is empty


def test_hottest_voxel_sums_the_frames():
    a, b = np.zeros((3, 3, 3)), np.zeros((3, 3, 3))
    a[0, 1, 2], b[2, 2, 2] = 1.0, 0.6
    b[0, 1, 2] = 0.5
    assert hottest_voxel([a, b]) == (0, 1, 2)


# --- the derivative ----------------------------------------------------------------------------


def test_fusion_derivative_keeps_the_pet_total(tmp_path):
    scenario, phantom, pet, mri = _fake_subject()
    written = write_pet_mri_fusion(tmp_path, scenario, phantom, pet, mri, get_backend("numpy"),
                                   pet_grid=PET_GRID, mri_grid=MRI_GRID)
    root = tmp_path / "derivatives" / "fusion"
    # 2 methods x (2 sessions' images + 1 overlay) x (.nii.gz, .json)
    assert all(p.exists() for p in written) and len(written) == 12
    for method in ("osem", "fbp"):
        source = pet.images_bq_per_ml[method]
        fused = []
        for frame, label in ((1, "4h"), (2, "24h")):  # PET frames at 4 h and 24 h have MRI sessions
            stem = root / "sub-01" / f"ses-{label}" / "pet" / f"sub-01_ses-{label}_trc-lipo_rec-{method}"
            data, affine = read_nifti(f"{stem}_space-MRI_pet.nii.gz")
            assert data.shape == MRI_GRID.shape
            np.testing.assert_allclose(affine, np.array(MRI_GRID.affine), atol=1e-6)
            sidecar = json.loads(Path(f"{stem}_space-MRI_pet.json").read_text())
            assert sidecar["Units"] == "Bq/mL" and sidecar["SessionTime_h"] == float(label[:-1])
            assert sidecar["FrameTimesStart"] == [float(label[:-1]) * 3600.0]
            assert sidecar["Sources"][0] == f"bids:raw:sub-01/ses-{label}/pet/sub-01_ses-{label}_trc-lipo_rec-{method}_pet.nii.gz"
            before = volume_integral(source[..., frame], PET_GRID)
            after = volume_integral(data, MRI_GRID)  # measured from the file, not the sidecar
            assert abs(after / before - 1.0) < 0.01
            assert sidecar["TotalActivityBefore_Bq"] == pytest.approx(before, rel=1e-6)
            assert sidecar["TotalActivityRatio"] == pytest.approx(after / before, rel=1e-6)
            fused.append(f"bids::sub-01/ses-{label}/pet/{Path(stem).name}_space-MRI_pet.nii.gz")
        stem = root / "sub-01" / "pet" / f"sub-01_trc-lipo_rec-{method}"
        picture = _read_png(f"{stem}_desc-fusedMRI_overlay.png")
        nx, ny, nz = MRI_GRID.shape
        assert picture.shape == (ny + 2 + nz, 2 * nx + 2, 3)  # two sessions, axial above coronal
        layout = json.loads(Path(f"{stem}_desc-fusedMRI_overlay.json").read_text())
        assert layout["Units"] == "8-bit RGB (PNG)" and len(layout["SliceVoxel_xyz"]) == 3
        assert layout["Sessions"] == ["ses-4h", "ses-24h"] and layout["Sources"][:2] == fused


def test_fusion_writes_nothing_without_a_common_time(tmp_path):
    scenario, phantom, pet, mri = _fake_subject(mri_times_h=(2.0, 48.0, 96.0))
    assert write_pet_mri_fusion(tmp_path, scenario, phantom, pet, mri, get_backend("numpy")) == []
    assert not (tmp_path / "derivatives").exists()


def test_fusion_of_a_simulated_subject(tmp_path):
    from imagingsim.pipeline import load_scenario, simulate

    scenario = load_scenario(None, ["phantom.voxel_size_mm=1.0", "schedule.times_h=[1.0, 24.0]",
                                    'modalities.enabled=["pet", "mri"]'])
    subject = simulate(scenario, backend="numpy")
    pet, mri = subject.acquisitions["pet"], subject.acquisitions["mri"]
    written = write_pet_mri_fusion(tmp_path, scenario, subject.phantom, pet, mri, subject.backend)
    assert len(written) == (2 * 2 + 2) * len(pet.images_bq_per_ml)  # 2 sessions' images + the overlay
    ratios = [json.loads(path.read_text())["TotalActivityRatio"] for path in written
              if path.name.endswith("space-MRI_pet.json")]
    assert len(ratios) == 2 * len(pet.images_bq_per_ml) and all(abs(r - 1.0) < 0.01 for r in ratios)


def test_the_dataset_describes_the_fusion_derivative(tmp_path):
    """write_subject adds the derivative's description and a README naming each fused pair."""
    from imagingsim.pipeline import load_scenario, simulate, write_subject

    scenario = load_scenario(None, ["phantom.voxel_size_mm=2.0", "schedule.times_h=[24.0]",
                                    'modalities.enabled=["pet", "mri"]'])
    write_subject(simulate(scenario, backend="numpy"), tmp_path / "ds")
    root = tmp_path / "ds" / "derivatives" / "fusion"
    description = json.loads((root / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["GeneratedBy"][0]["Name"] == "imagingsim-fusion"
    readme = (root / "README").read_text()
    assert "(PET on MRI)" in readme and "space-MRI_pet" in readme and "space-CT" not in readme
