"""spect."""
