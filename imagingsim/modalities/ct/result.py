"""What the CT forward model hands to the writers: HU images, raw counts and their metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imagingsim.modalities.ct.spectrum import XraySpectrum
from imagingsim.projectors import ParallelBeamGeometry


@dataclass(frozen=True)
class CTSystemParams:
    """A CT preset (``data/ct_systems.toml``) after the scenario's overrides (units in the names).

    ``fluence_photons_per_mAs_per_mm2`` is the preset's stated fluence at its own
    ``fluence_kvp`` and filtration (``fluence_filtration_mm``); the spectrum of the actual
    settings is scaled from it (:func:`imagingsim.modalities.ct.spectrum.xray_spectrum`).
    """

    preset: str
    manufacturer: str
    model: str
    kvp: float
    tube_current_time_mAs: float
    inherent_filtration_mm_Al: float
    added_filtration_mm_Al: float
    added_filtration_mm_Cu: float
    n_views: int
    fluence_photons_per_mAs_per_mm2: float
    fluence_kvp: float
    fluence_filtration_mm: dict[str, float]
    calibration_diameter_mm: float
    fbp_filter: str
    fbp_cutoff: float
    water_precorrection: bool
    noise: bool

    @property
    def filtration_mm(self) -> dict[str, float]:
        """Total filtration of the scan by element, mm: inherent Al + added Al, added Cu."""
        return {"Al": self.inherent_filtration_mm_Al + self.added_filtration_mm_Al, "Cu": self.added_filtration_mm_Cu}


@dataclass(frozen=True)
class WaterCalibration:
    """How line integrals become mu and mu becomes HU (see :mod:`imagingsim.modalities.ct.acquire`).

    Attributes
    ----------
    effective_energy_keV : float
        Reference energy ``E_ref``: the energy at which water attenuates as much as the
        calibration cylinder's mean reconstructed mu (``calibration_mu_water_per_mm``).
        True mu maps and HU are stated at this energy.
    mu_water_per_mm : float
        ``mu_water(E_ref)``, 1/mm: the HU denominator (with or without pre-correction;
        equal to ``calibration_mu_water_per_mm`` by the definition of ``E_ref``).
    calibration_mu_water_per_mm : float
        Mean reconstructed mu, without pre-correction, inside a water cylinder of
        ``calibration_diameter_mm``: ``int p_poly(chord(s)) ds / (pi R^2)``, 1/mm.
    calibration_diameter_mm : float
    hu_bone : float
        HU that cortical bone (ICRU 44, 1.92 g/mL) reads on this CT: a central chord of
        ``calibration_bone_mm`` of bone in the calibration cylinder through the same chain as
        the data (polyenergetic line integral, 1-photon clip, the water pre-correction when
        ``water_precorrection``, else none;
        :func:`~imagingsim.modalities.ct.spectrum.measured_bone_hu`). The break point of the
        bilinear HU -> mu conversion (:func:`imagingsim.modalities.ct.attenuation.hu_to_mu_per_mm`), so
        bone as reconstructed maps to bone's mu.
    hu_bone_monoenergetic : float
        HU of cortical bone at the monoenergetic ``E_ref``
        (:func:`~imagingsim.modalities.ct.spectrum.bone_hu`): higher than ``hu_bone``
        because the water pre-correction does not undo bone's beam hardening. Kept for
        reference; using it as the break point under-estimates bone's mu.
    calibration_bone_mm : float
        Cortical-bone chord of the ``hu_bone`` calibration, mm.
    water_precorrection : bool
        Whether ``hu_bone`` was calibrated through the water pre-correction (as the data are).
    water_lengths_mm, water_line_integrals : tuple of float
        The pre-correction table: polyenergetic line integral ``p_poly(L)`` (mm x 1/mm) of
        water lengths ``L`` (mm); pre-correction maps a measured ``p`` to
        ``mu_water_per_mm * L(p)``.
    """

    effective_energy_keV: float
    mu_water_per_mm: float
    calibration_mu_water_per_mm: float
    calibration_diameter_mm: float
    hu_bone: float
    hu_bone_monoenergetic: float
    calibration_bone_mm: float
    water_precorrection: bool
    water_lengths_mm: tuple[float, ...] = field(repr=False)
    water_line_integrals: tuple[float, ...] = field(repr=False)


@dataclass(frozen=True, eq=False)
class CTAcquisition:
    """One CT study: a scan at each schedule time, raw counts and HU reconstructions.

    Device arrays are float32. Images are ``(nx, ny, nz, n_scans)`` on the phantom grid;
    sinograms are ``(n_views, n_bins, nz, n_scans)`` (view, radial bin, slice, scan).

    Attributes
    ----------
    system : CTSystemParams
    geometry : ParallelBeamGeometry
        Transaxial geometry (bins of the pixel size); detector rows are the grid's z planes.
    times_h : tuple of float
        Scan times, hours after the scenario's t = 0 (every schedule time).
    spectrum : XraySpectrum
        Filtered spectrum at isocentre per mAs (energies_keV, photons_per_mAs_per_mm2).
    i0_photons_per_energy : tuple of float
        Unattenuated photons per detector bin per view in each energy bin ``N0(E)``:
        spectrum x mAs per view x bin width x slice thickness.
    i0_photons : float
        Their sum: the air scan (flood) counts per detector bin per view.
    calibration : WaterCalibration
        Reference energy, mu_water, HU of bone (measured and monoenergetic), the pre-correction table.
    materials : tuple of str
        Materials of the density basis maps (``data/materials.toml`` keys).
    contrast_elements : tuple of str
        Contrast elements present (``"gold"``, ``"iodine"``), each a basis map.
    hu : device array ``(nx, ny, nz, n_scans)``
        Reconstructed CT numbers, HU.
    mu_recon_per_mm : device array ``(nx, ny, nz, n_scans)``
        Reconstructed attenuation (FBP of the log, pre-corrected when
        ``system.water_precorrection``), 1/mm.
    expected_counts : device array ``(n_views, n_bins, nz, n_scans)``
        ``sum_E N0(E) exp(-p(E))``, photons.
    measured_counts : device array ``(n_views, n_bins, nz, n_scans)``
        Poisson draws of ``expected_counts`` (integer-valued), or the expected counts when
        ``system.noise`` is false.
    mu_true_per_mm : device array ``(nx, ny, nz, n_scans)``
        True attenuation at ``calibration.effective_energy_keV`` (tissues + contrast), 1/mm:
        what the reconstructions estimate (``hu`` estimates ``1000 (mu_true - mu_w) / mu_w``).
    contrast_mg_per_ml : dict of str -> device array ``(nx, ny, nz, n_scans)``
        Concentration of each contrast element (gold, iodine) used by the forward model,
        mg of element per mL of tissue (carrier ug/mL x mass fraction / 1000).
    timings_s : dict of str -> float
        Wall time of each stage, s.
    """

    system: CTSystemParams
    geometry: ParallelBeamGeometry
    times_h: tuple[float, ...]
    spectrum: XraySpectrum
    i0_photons_per_energy: tuple[float, ...]
    i0_photons: float
    calibration: WaterCalibration
    materials: tuple[str, ...]
    contrast_elements: tuple[str, ...]
    hu: Any
    mu_recon_per_mm: Any
    expected_counts: Any
    measured_counts: Any
    mu_true_per_mm: Any
    contrast_mg_per_ml: dict[str, Any]
    timings_s: dict[str, float] = field(default_factory=dict)
    grid: Any = None

    @property
    def effective_energy_keV(self) -> float:
        """Reference energy of the HU scale, keV (see :class:`WaterCalibration`)."""
        return self.calibration.effective_energy_keV

    def attenuation_map_per_mm(self, scan: int, energy_keV: float, grid, backend):
        """Scan ``scan`` as linear attenuation at ``energy_keV`` on ``grid`` (e.g. a SPECT grid), 1/mm.

        The bilinear HU -> mu conversion (:func:`~imagingsim.modalities.ct.attenuation.hu_to_mu_per_mm`
        with this CT's :attr:`hu_bone`), resampled onto ``grid`` as a concentration (each
        target voxel the mean over its box, which keeps the mu integral; a point-sampling
        resampler would alias), then clipped at 0. Negative mu (noise in air) is kept through
        the averaging and clipped after it, so that noise averages out instead of biasing air
        upwards.

        Returns
        -------
        device array, float32, shape ``grid.shape``
        """
        from imagingsim.io.resample import resample_to_grid
        from imagingsim.modalities.ct.attenuation import hu_to_mu_per_mm

        xp = backend.xp
        mu = hu_to_mu_per_mm(self.hu[..., scan], energy_keV, backend, hu_bone=self.hu_bone, clip_negative=False)
        host = resample_to_grid(backend.to_host(mu), self.grid, grid, quantity="concentration")
        return xp.clip(xp.astype(backend.from_host(host), xp.float32), 0.0, None)

    @property
    def hu_bone(self) -> float:
        """HU cortical bone reads on this CT (for :func:`~imagingsim.modalities.ct.attenuation.hu_to_mu_per_mm`; see
        :class:`WaterCalibration`)."""
        return self.calibration.hu_bone

    @property
    def hu_bone_monoenergetic(self) -> float:
        """HU of cortical bone at the monoenergetic reference energy (reference only; see :class:`WaterCalibration`)."""
        return self.calibration.hu_bone_monoenergetic

    @property
    def mu_water_per_mm(self) -> float:
        """``mu_water(E_ref)``, 1/mm: the HU denominator."""
        return self.calibration.mu_water_per_mm


__all__ = ["CTAcquisition", "CTSystemParams", "WaterCalibration"]
