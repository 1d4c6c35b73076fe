"""The training set's scenes: deterministic, textured, deforming, occluding, with exact masks."""

from __future__ import annotations

import numpy as np

from masklet.io.synthetic_dataset import TexturedScene


def test_frames_are_a_function_of_seed_and_time():
    a = TexturedScene.random(height=96, width=128, num_objects=3, seed=11)
    b = TexturedScene.random(height=96, width=128, num_objects=3, seed=11)
    for t in (0, 17):
        (ia, ma), (ib, mb) = a.render(t), b.render(t)
        assert np.array_equal(ia, ib) and np.array_equal(ma, mb)
    assert not np.array_equal(a.render(0)[0], TexturedScene.random(height=96, width=128, num_objects=3, seed=12).render(0)[0])


def test_objects_are_textured_deform_and_occlude():
    scene = TexturedScene.random(height=120, width=160, num_objects=4, seed=3)
    image, masks = scene.render(0)
    for k in range(4):
        if masks[k].sum() > 50:
            assert len(np.unique(image[masks[k]].reshape(-1, 3), axis=0)) == 2  # two-colour texture
    assert not (masks.sum(axis=0) > 1).any()  # a pixel belongs to one object at most
    # occlusion: somewhere in the clip, an object shows fewer pixels than its own shape covers
    occluded = False
    elongations = []
    for t in range(0, 60, 3):
        _, visible = scene.render(t)
        top = visible[-1]  # the last object is drawn on top: its mask is its whole shape
        ys, xs = np.nonzero(top)
        lo, hi = np.linalg.eigvalsh(np.cov(np.stack([xs, ys]).astype(float)))
        elongations.append(hi / lo)  # unchanged by moving and turning; changed by deforming
        occluded |= any(visible[k].sum() < _shape_area(scene, k, t) for k in range(3))
    assert occluded
    assert max(elongations) > 1.1 * min(elongations)


def _shape_area(scene: TexturedScene, k: int, t: int) -> int:
    """Object k's pixels with nothing drawn over it (drawn last of a one-object scene)."""
    import dataclasses

    per_object = {f.name: getattr(scene, f.name)[k : k + 1] for f in dataclasses.fields(scene)
                  if f.name not in ("height", "width", "background")}  # fmt: skip
    solo = dataclasses.replace(scene, **per_object)
    return int(solo.render(t)[1][0].sum())
