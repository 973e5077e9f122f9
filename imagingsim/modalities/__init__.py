"""Imaging modalities: one subpackage each, behind the contract of :mod:`.base`, found by :mod:`.registry`.

Each turns a phantom and its delivery into an acquisition (raw data, images, truth), writes
it into the dataset and summarises it.
"""
