"""mmr_gym.arrays: each helper makes a read-only array and keeps its own copy semantics."""

from __future__ import annotations

import numpy as np
import pytest

from mmr_gym.arrays import read_only, read_only_contiguous, read_only_copy


def test_read_only_flags_the_array_itself():
    array = np.arange(4.0)
    assert read_only(array) is array
    with pytest.raises(ValueError, match="read-only"):
        array[0] = 1.0


def test_read_only_contiguous_copies_only_what_is_not_contiguous():
    contiguous = np.arange(6.0).reshape(2, 3)
    assert read_only_contiguous(contiguous) is contiguous  # flagged in place
    assert not contiguous.flags.writeable
    strided = np.arange(6.0).reshape(2, 3).T
    made = read_only_contiguous(strided)
    assert made.flags.c_contiguous and not made.flags.writeable
    assert strided.flags.writeable and not np.shares_memory(made, strided)
    np.testing.assert_array_equal(made, strided)


def test_read_only_copy_leaves_the_original_writable():
    original = np.arange(4.0)
    made = read_only_copy(original)
    assert not made.flags.writeable and original.flags.writeable
    original[0] = 9.0
    assert made[0] == 0.0
