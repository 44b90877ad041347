import pytest

from mlinfer.runtime.errors import InvalidEventError
from mlinfer.runtime.events import ItemResult, parse_event


def test_direct_items():
    req = parse_event({"items": [{"id": 1, "text": "hi"}], "batch": 3})
    assert req.items == [{"id": 1, "text": "hi"}] and req.batch == 3 and req.source is None


def test_item_batcher_shape_merges_batch_input():
    req = parse_event({"Items": [{"id": "a"}], "BatchInput": {"output": {"uri": "s3://b/k.jsonl"}, "batch": 7}})
    assert req.items == [{"id": "a"}]
    assert req.output.uri == "s3://b/k.jsonl" and req.batch == 7


def test_source_slice_with_aliases():
    req = parse_event({"source": {"uri": "s3://b/in.jsonl", "offset": 200, "limit": 100, "byteStart": 5, "byteEnd": 9}})
    assert (req.source.offset, req.source.limit, req.source.byte_start, req.source.byte_end) == (200, 100, 5, 9)


def test_json_string_event():
    assert parse_event('{"items": []}').items == []


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        ("not json", "not valid JSON"),
        ([1, 2], "must be a JSON object"),
        ({}, "exactly one of 'items'"),
        ({"items": [], "source": {"uri": "x"}}, "exactly one of 'items'"),
        ({"items": "abc"}, "'items' must be a list"),
        ({"source": {"uri": "s3://b/k", "offset": -1}}, "source.offset"),
        ({"source": {"uri": "s3://b/k", "limit": 0}}, "source.limit"),
        ({"Items": [], "BatchInput": 5}, "BatchInput"),
    ],
)
def test_invalid_events_raise_typed_error(event, fragment):
    with pytest.raises(InvalidEventError, match=fragment):
        parse_event(event)


def test_item_result_lines():
    assert ItemResult.ok("x", {"a": 1}).to_line() == {"id": "x", "result": {"a": 1}}
    assert ItemResult.fail("x", "EmptyText", "empty").to_line() == {
        "id": "x",
        "error": {"type": "EmptyText", "message": "empty"},
    }
