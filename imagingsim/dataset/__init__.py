"""Assembly of the BIDS dataset above the modalities: top level, raw anatomy, truth derivative."""
