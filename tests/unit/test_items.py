import math

import pytest

from mlinfer.runtime.items import ItemInputError, as_mapping, validate_features, validate_text


@pytest.mark.parametrize(
    ("value", "error_type"),
    [(5, "InvalidType"), (None, "InvalidType"), ("", "EmptyText"), ("   \n", "EmptyText"), ("x" * 21, "TextTooLong")],
)
def test_bad_texts(value, error_type):
    with pytest.raises(ItemInputError) as exc:
        validate_text(value, max_chars=20)
    assert exc.value.type == error_type


@pytest.mark.parametrize(
    ("value", "error_type"),
    [
        ("1,2,3", "InvalidType"),
        ([1.0, 2.0], "WrongFeatureCount"),
        ([1.0, "a", 3.0], "InvalidType"),
        ([1.0, True, 3.0], "InvalidType"),
        ([1.0, math.nan, 3.0], "NonFiniteValue"),
        ([1.0, math.inf, 3.0], "NonFiniteValue"),
    ],
)
def test_bad_features(value, error_type):
    with pytest.raises(ItemInputError) as exc:
        validate_features(value, dim=3)
    assert exc.value.type == error_type


def test_good_inputs():
    assert validate_text(" ok ") == " ok "
    assert validate_features([1, 2.5, -3], dim=3).tolist() == [1.0, 2.5, -3.0]


def test_as_mapping_shapes():
    assert as_mapping("hello") == {"text": "hello"}
    assert as_mapping([1, 2]) == {"features": [1, 2]}
    with pytest.raises(ItemInputError, match="no 'id'"):
        as_mapping({"text": "x"})
    with pytest.raises(ItemInputError) as exc:
        as_mapping(42)
    assert exc.value.type == "InvalidItem"
