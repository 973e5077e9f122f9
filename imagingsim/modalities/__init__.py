"""Modality forward models: each turns a phantom and its delivery into an acquisition."""
