"""Host-side input/output: NIfTI, BIDS dataset writing, resampling (numpy allowed here)."""
