"""Voxel phantoms: anatomy, tumours, seeded heterogeneity and property maps."""

from imagingsim.phantom.build import build_phantom
from imagingsim.phantom.model import PROPERTY_UNITS, TUMOUR_LABELS, Label, Phantom

__all__ = ["PROPERTY_UNITS", "TUMOUR_LABELS", "Label", "Phantom", "build_phantom"]
