"""MRI on disk: BIDS multi-echo GRE and R2* maps with their sidecars, raw k-space that
reproduces the documented model, truth files matching their registered patterns, the iron
estimate derivative, and a validator-clean dataset."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from imagingsim.dataset.layout import truth_files
from imagingsim.modalities.mri.physics import spoiled_gre
from imagingsim.modalities.mri.truth import TRUTH_FILES as MRI_TRUTH_FILES
from imagingsim.pipeline import load_scenario, simulate, write_subject

TIMES_H = [0.5, 24.0]
LABELS = ["0p5h", "24h"]
ECHOES_MS = [2.0, 5.0, 9.0, 14.0]


@pytest.fixture(scope="module")
def mri_dataset(tmp_path_factory):
    scenario = load_scenario(
        "mouse_targeted_spion",
        [
            "phantom.voxel_size_mm=2.0",
            f"schedule.times_h={TIMES_H}",
            'modalities.enabled=["mri"]',
            f"modalities.mri.echo_times_ms={ECHOES_MS}",
            "modalities.mri.n_coils=4",
            'modalities.mri.undersampling="variable_density"',
            "modalities.mri.acceleration=2.0",
            "modalities.mri.b0_offresonance_hz=20.0",
            "modalities.mri.cg_iterations=10",
        ],
    )
    subject = simulate(scenario, backend="numpy")
    out = tmp_path_factory.mktemp("mri") / "ds"
    files = write_subject(subject, out)
    return out, subject, files


def _sidecar(path):
    return json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())


def test_megre_files_and_sidecars(mri_dataset):
    out, subject, _ = mri_dataset
    spec = subject.scenario.modalities.mri
    for k, label in enumerate(LABELS):
        anat = out / "sub-01" / f"ses-{label}" / "anat"
        for e, te in enumerate(ECHOES_MS):
            path = anat / f"sub-01_ses-{label}_echo-{e + 1}_part-mag_MEGRE.nii.gz"
            img = nib.load(path)
            assert img.shape == subject.phantom.grid.shape
            assert img.header.get_xyzt_units() == ("mm", "sec")
            sidecar = _sidecar(path)
            assert sidecar["EchoTime"] == pytest.approx(te / 1000.0, rel=1e-12)  # seconds
            assert sidecar["RepetitionTime"] == pytest.approx(spec.repetition_time_ms / 1000.0, rel=1e-12)
            assert sidecar["FlipAngle"] == spec.flip_angle_deg
            assert sidecar["MagneticFieldStrength"] == 3.0
            assert sidecar["Manufacturer"] and sidecar["ManufacturersModelName"]
            assert sidecar["MRAcquisitionType"] == "3D" and sidecar["ScanningSequence"] == "GR"
            assert sidecar["SessionTime_s"] == TIMES_H[k] * 3600.0
            assert sidecar["Acceleration"] == pytest.approx(2.0, rel=0.01)
            assert sidecar["ParallelReductionFactorInPlane"] == sidecar["Acceleration"]
            assert sidecar["NoiseSD"] == subject.acquisitions["mri"].noise_sd[0]  # one sigma for every session
            assert sidecar["ContrastAgents"][0]["r2star_per_mM_s"] == 55.7
            # the image is the acquisition's reconstruction (float32 on disk)
            np.testing.assert_allclose(img.get_fdata(), np.asarray(subject.acquisitions["mri"].magnitude)[k, e], rtol=1e-6)
        r2 = anat / f"sub-01_ses-{label}_R2starmap.nii.gz"
        sidecar = _sidecar(r2)
        assert sidecar["Units"] == "1/s" and len(sidecar["BasedOn"]) == len(ECHOES_MS)
        assert all((out / f).exists() for f in sidecar["BasedOn"])


def test_raw_kspace_reproduces_the_documented_model(mri_dataset):
    # Rebuild the noiseless k-space from the truth maps with the sidecar's convention; the rest
    # is noise of the stated sd, only at the acquired encodes.
    out, subject, _ = mri_dataset
    raw = out / "sourcedata" / "sub-01" / "mri"
    record = json.loads((raw / "sub-01_kspace.json").read_text())
    truth = out / "derivatives" / "truth" / "sub-01" / "mri"
    mask = np.load(raw / "sub-01_samplingmask.npy")
    maps = np.load(raw / "sub-01_coilmaps.npy")
    assert mask.dtype == bool and maps.dtype == np.complex64
    assert record["AcquiredPhaseEncodes"] == mask.sum()
    # The calibration box the mask was drawn with, reported the same in the raw sidecar and here,
    # and fully sampled in the mask (centred: k = 0 at n // 2).
    sidecar = json.loads((out / "sub-01" / "ses-24h" / "anat" / "sub-01_ses-24h_echo-1_part-mag_MEGRE.json").read_text())
    cy, cz = record["CalibrationEncodes"]
    assert (sidecar["CalibrationFraction"], sidecar["CalibrationEncodes"]) == (record["CalibrationFraction"], [cy, cz])
    assert record["CalibrationFraction"] == subject.scenario.modalities.mri.calibration_fraction and cy * cz > 0
    ny, nz = mask.shape
    assert mask[ny // 2 - cy // 2:ny // 2 - cy // 2 + cy, nz // 2 - cz // 2:nz // 2 - cz // 2 + cz].all()
    assert record["ParallelReductionFactorInPlane"] == record["Acceleration"]
    assert record["Acceleration"] == pytest.approx(mask.size / mask.sum(), rel=1e-12)
    c = tuple(n // 2 for n in mask.shape)
    assert mask[c]  # centred: k = 0 at n // 2, in the calibration box
    np.testing.assert_allclose(np.sum(np.abs(maps) ** 2, axis=0), 1.0, rtol=1e-5)  # complex64
    offres = nib.load(truth / "sub-01_desc-offresonance_fieldmap.nii.gz").get_fdata()
    pd = np.asarray(subject.phantom.properties["proton_density"])
    for k, label in enumerate(LABELS):
        session = out / "sourcedata" / "sub-01" / f"ses-{label}" / "mri"
        kspace = read_ismrmrd_kspace(session / f"sub-01_ses-{label}_kspace.h5", subject.phantom.grid.shape)
        assert kspace.dtype == np.complex64 and kspace.shape == (len(ECHOES_MS), 4) + subject.phantom.grid.shape
        assert np.all(kspace[..., ~mask] == 0)
        truth_session = truth.parent / f"ses-{label}" / "mri"
        r1 = nib.load(truth_session / f"sub-01_ses-{label}_desc-true_R1map.nii.gz").get_fdata()
        r2s = nib.load(truth_session / f"sub-01_ses-{label}_desc-true_R2starmap.nii.gz").get_fdata()
        spec = subject.scenario.modalities.mri
        m = np.asarray(spoiled_gre(pd, r1, r2s, repetition_time_ms=spec.repetition_time_ms, echo_times_ms=ECHOES_MS,
                                   flip_angle_deg=spec.flip_angle_deg, offresonance_hz=offres))
        clean = np.fft.fftshift(np.fft.fftn(maps[None] * m[:, None], axes=(-3, -2, -1), norm="ortho"), axes=(-3, -2, -1))
        residual = (kspace - clean)[..., mask]
        sd = record["Sessions"][label]["NoiseSD"]
        # ~60k samples per part: the sample sd is within 2 % of NoiseSD (SE 0.3 %; the float32
        # truth maps add ~1e-7 relative); a wrong FFT convention or shift would be O(signal).
        assert np.std(residual.real) == pytest.approx(sd, rel=0.02)
        assert np.std(residual.imag) == pytest.approx(sd, rel=0.02)
        assert abs(np.mean(residual.real)) < 5 * sd / np.sqrt(residual.size)


def read_ismrmrd_kspace(path, shape):
    """k-space ``[echo, coil, kx, ky, kz]`` from an ISMRMRD file, read with the ismrmrd package."""
    import ismrmrd

    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    try:
        header = ismrmrd.xsd.CreateFromDocument(dataset.read_xml_header())
        matrix = header.encoding[0].encodedSpace.matrixSize
        assert (matrix.x, matrix.y, matrix.z) == tuple(shape)
        n_echoes = len(header.sequenceParameters.TE)
        n_coils = header.acquisitionSystemInformation.receiverChannels
        kspace = np.zeros((n_echoes, n_coils, *shape), np.complex64)
        for i in range(dataset.number_of_acquisitions()):
            acq = dataset.read_acquisition(i)
            assert acq.center_sample == shape[0] // 2
            kspace[acq.idx.contrast, :, :, acq.idx.kspace_encode_step_1, acq.idx.kspace_encode_step_2] = acq.data
    finally:
        dataset.close()
    return kspace


def test_ismrmrd_header_and_a_plain_inverse_fft_rebuild_the_fully_sampled_images(tmp_path):
    """Fully sampled, two coils, zero-filled recon: RSS of the inverse FFT of the ISMRMRD data is
    the written magnitude (float32 files: 1e-5 relative)."""
    import ismrmrd

    scenario = load_scenario("mouse_targeted_spion", [
        "phantom.voxel_size_mm=2.0", "schedule.times_h=[24.0]", 'modalities.enabled=["mri"]',
        "modalities.mri.n_coils=2", 'modalities.mri.recon="zero_filled"'])
    out = tmp_path / "ds"
    write_subject(simulate(scenario, backend="numpy"), out)
    path = out / "sourcedata" / "sub-01" / "ses-24h" / "mri" / "sub-01_ses-24h_kspace.h5"
    first_echo = nib.load(out / "sub-01" / "ses-24h" / "anat" / "sub-01_ses-24h_echo-1_part-mag_MEGRE.nii.gz")
    shape = first_echo.shape
    kspace = read_ismrmrd_kspace(path, shape)
    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    header = ismrmrd.xsd.CreateFromDocument(dataset.read_xml_header())
    n_acquisitions = dataset.number_of_acquisitions()
    dataset.close()
    spec = scenario.modalities.mri
    fov = header.encoding[0].encodedSpace.fieldOfView_mm
    assert (fov.x, fov.y, fov.z) == pytest.approx(tuple(n * 2.0 for n in shape))
    assert header.sequenceParameters.TE == pytest.approx(list(spec.echo_times_ms))
    assert header.sequenceParameters.TR == pytest.approx([spec.repetition_time_ms])
    assert header.acquisitionSystemInformation.receiverChannels == 2
    assert header.acquisitionSystemInformation.systemFieldStrength_T == pytest.approx(spec.field_T)
    assert n_acquisitions == len(spec.echo_times_ms) * shape[1] * shape[2]  # every phase encode, every echo
    for e in range(len(spec.echo_times_ms)):
        images = np.fft.ifftn(np.fft.ifftshift(kspace[e], axes=(-3, -2, -1)), axes=(-3, -2, -1), norm="ortho")
        rss = np.sqrt(np.sum(np.abs(images) ** 2, axis=0))
        written = nib.load(out / "sub-01" / "ses-24h" / "anat" / f"sub-01_ses-24h_echo-{e + 1}_part-mag_MEGRE.nii.gz").get_fdata()
        np.testing.assert_allclose(rss, written, rtol=1e-4, atol=1e-5 * written.max())


def test_ismrmrd_records_written_through_hdf5_memory_records_are_h5pys_bytes(tmp_path):
    """The acquisitions are handed to HDF5 as its own variable-length records (length and
    address of each k-space row). The file must be byte for byte the one h5py writes from one
    float32 array object per acquisition (its documented vlen path), and read back with
    ``ismrmrd.Dataset`` as the samples that went in."""
    import h5py
    import ismrmrd
    from ismrmrd.hdf5 import acquisition_dtype, acquisition_header_dtype

    from imagingsim.modalities.mri.ismrmrd_io import _hdf5_records

    rng = np.random.default_rng(3)
    n, n_coils, nx = 37, 3, 10
    lines = (rng.standard_normal((n, n_coils * nx)) + 1j * rng.standard_normal((n, n_coils * nx))).astype(np.complex64)
    head = np.zeros(n, dtype=acquisition_header_dtype)
    head["version"] = 1
    head["number_of_samples"] = nx
    head["active_channels"] = head["available_channels"] = n_coils
    head["scan_counter"] = np.arange(n)

    def write(path, fill):
        with h5py.File(path, "w", libver="earliest") as handle:
            fill(handle.create_group("dataset"))
        return path.read_bytes()

    def by_objects(group):
        records = np.zeros(n, dtype=acquisition_dtype)
        records["head"] = head
        for i in range(n):
            records["data"][i] = lines[i].view(np.float32)
            records["traj"][i] = np.zeros(0, np.float32)
        group.create_dataset("data", data=records, maxshape=(None,), chunks=True, track_times=False)

    def by_hdf5_records(group):
        data = group.create_dataset("data", shape=(n,), dtype=acquisition_dtype, maxshape=(None,), chunks=True,
                                    track_times=False)
        records, memory_type = _hdf5_records(head, lines)
        data.id.write(h5py.h5s.ALL, h5py.h5s.ALL, records, mtype=memory_type)

    assert write(tmp_path / "records.h5", by_hdf5_records) == write(tmp_path / "objects.h5", by_objects)
    dataset = ismrmrd.Dataset(str(tmp_path / "records.h5"), "dataset", create_if_needed=False)
    try:
        for i in (0, 17, n - 1):
            acquisition = dataset.read_acquisition(i)
            np.testing.assert_array_equal(acquisition.data.reshape(-1), lines[i])
            assert acquisition.scan_counter == i
    finally:
        dataset.close()


def test_truth_files_match_their_registered_patterns(mri_dataset):
    out, _, _ = mri_dataset
    truth = out / "derivatives" / "truth"
    mri_files = sorted((truth / "sub-01").glob("**/mri/*"))
    assert len(mri_files) == 2 * (4 * len(LABELS) + 3)  # per session 4 maps, plus 3 fixed, each .nii.gz + .json
    assert len(list((truth / "sub-01" / "mri").iterdir())) == 2 * 3  # the fixed ones at subject level
    used = set()
    for path in mri_files:
        rel = path.relative_to(truth).as_posix()
        matches = [t.stem for t in truth_files() if t.regex().fullmatch(rel)]
        assert len(matches) == 1, f"{rel} matches {matches}"
        assert matches[0] in {t.stem for t in MRI_TRUTH_FILES}
        used.add(matches[0])
    assert used == {t.stem for t in MRI_TRUTH_FILES}  # every pattern is written in this configuration
    readme = (truth / "README").read_text()
    assert all(t.display() in readme for t in MRI_TRUTH_FILES)
    iron = nib.load(truth / "sub-01" / "ses-24h" / "mri" / "sub-01_ses-24h_desc-iron_conc.nii.gz").get_fdata()
    carrier = nib.load(truth / "sub-01" / "ses-24h" / "delivery" / "sub-01_ses-24h_desc-spionCarrier_conc.nii.gz").get_fdata()
    np.testing.assert_allclose(iron, carrier * 0.5 / 55.845, rtol=1e-6, atol=1e-9)  # float32 files
    assert json.loads((truth / "sub-01" / "ses-24h" / "mri" / "sub-01_ses-24h_desc-iron_conc.json").read_text())["Units"] == "mM"


def test_iron_estimate_is_a_separate_derivative(mri_dataset):
    out, _, _ = mri_dataset
    root = out / "derivatives" / "mri-iron"
    description = json.loads((root / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["DatasetLinks"] == {"raw": "../../"}
    for label in LABELS:
        path = root / "sub-01" / f"ses-{label}" / "anat" / f"sub-01_ses-{label}_desc-ironEstimate_conc.nii.gz"
        sidecar = _sidecar(path)
        assert sidecar["Units"] == "mM" and "pre-contrast" in sidecar["Description"]
        assert sidecar["NoEstimateValue"] == "NaN" and "NaN" in sidecar["Description"]
        mask = nib.load(root / "sub-01" / f"ses-{label}" / "anat" / f"sub-01_ses-{label}_desc-r2starFit_mask.nii.gz").get_fdata()
        estimate = nib.load(path).get_fdata()
        assert np.all(np.isnan(estimate[mask == 0]))  # no estimate where the fit was masked
        assert np.isfinite(estimate[mask == 1]).mean() > 0.9  # ... and one almost everywhere it was fitted
    assert not list((out / "derivatives" / "truth").rglob("*ironEstimate*"))  # an estimate is not truth


@pytest.mark.validator
def test_mri_dataset_passes_bids_validator(mri_dataset, bids_validator):
    out, _, _ = mri_dataset
    report = bids_validator(out)
    assert report["errors"] == []
    assert "MEGRE" in report["summary"]["dataTypes"] and "R2starmap" in report["summary"]["dataTypes"]
