"""Kernels shared by two or more modalities: photon attenuation, radioactive decay, noise, metrics."""
