"""one_frame: the one-session view the writers use of a multi-frame result."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from imagingsim.modalities.frames import one_frame


@dataclass(frozen=True)
class _Study:
    starts: tuple
    image: np.ndarray
    recons: dict
    counts: dict
    geometry: str


def _study() -> _Study:
    image = np.arange(2 * 3 * 4 * 3, dtype=np.float32).reshape(2, 3, 4, 3)
    return _Study((0.0, 3600.0, 86400.0), image, {"osem": image * 2}, {"trues": (1.0, 2.0, 3.0)}, "shared")


def test_each_named_field_is_reduced_to_its_frame_and_the_rest_is_shared():
    study = _study()
    frame = one_frame(study, 2, n_frames=3, tuples=("starts",), arrays=("image",), array_maps=("recons",),
                      tuple_maps=("counts",))
    assert frame.starts == (86400.0,) and frame.counts == {"trues": (3.0,)}
    np.testing.assert_array_equal(frame.image, study.image[..., 2])
    np.testing.assert_array_equal(frame.recons["osem"], 2 * study.image[..., 2])
    assert frame.image.shape == (2, 3, 4) and frame.geometry is study.geometry
    assert study.starts == (0.0, 3600.0, 86400.0)  # the study itself is unchanged


@pytest.mark.parametrize("k", [-1, 3])
def test_a_frame_outside_the_study_is_refused(k):
    with pytest.raises(IndexError, match="out of range 0..2"):
        one_frame(_study(), k, n_frames=3, tuples=("starts",))
