"""bench/infercam_regime.py: the pieces its variants rest on."""
import pytest

import data.make_demo_dataset as demo
from bench import infercam_regime as regime


def test_every_variant_changes_constants_the_dataset_module_has():
    for name, (constants, factor) in regime.variants().items():
        assert factor >= 1
        for constant, value in constants.items():
            assert type(getattr(demo, constant)) is type(value), (name, constant)


def test_patched_sets_the_constants_inside_the_block_and_restores_them_after_an_error():
    before = demo.BODY_PREFERENCE
    with pytest.raises(RuntimeError):
        with regime.patched(demo, BODY_PREFERENCE=0.9):
            assert demo.BODY_PREFERENCE == 0.9
            raise RuntimeError
    assert demo.BODY_PREFERENCE == before


def test_patched_refuses_a_constant_the_module_lacks():
    with pytest.raises(AttributeError):
        with regime.patched(demo, NO_SUCH_CONSTANT=1):
            pass


def test_patched_constants_change_the_drawn_images(tmp_path):
    demo.make_demo_dataset(tmp_path / "a", seed=1, num_train=2, num_val=1)
    with regime.patched(demo, DISTRACTORS=(0, 0), BODY_PREFERENCE=1.0):
        demo.make_demo_dataset(tmp_path / "b", seed=1, num_train=2, num_val=1)
    image = "JPEGImages/2026_000001.jpg"
    assert (tmp_path / "a" / image).read_bytes() != (tmp_path / "b" / image).read_bytes()


def test_scaled_sizes_multiplies_the_crop_and_both_resize_values():
    argv = ["train_cls.py", "--crop_size", "128", "--resize_long", "96", "160", "--seed", "0"]
    assert regime.scaled_sizes(argv, 2) == ["train_cls.py", "--crop_size", "256",
                                            "--resize_long", "192", "320", "--seed", "0"]
