"""Host-side toolkit below the modalities: atomic writes, NIfTI, canonical sidecars, host copies,
resampling between grids and colour overlays (numpy allowed here; no modality is named)."""
