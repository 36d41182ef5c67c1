"""Edit lists reduced to render plans: range algebra, effect composition, checks against the source."""

from __future__ import annotations

import math

import pytest

from core.media.editplan import Crop, Scale, atempo_chain, build_plan
from core.media.errors import InvalidRequest


def plan(*edits: dict, duration: float = 10.0, width: int = 320, height: int = 240):
    return build_plan(list(edits), duration=duration, width=width, height=height)


def test_no_edits_keep_the_whole_source():
    result = plan()
    assert result.ranges == ((0.0, 10.0),)
    assert (result.speed, result.gain, result.fade_in, result.fade_out) == (1.0, 1.0, 0.0, 0.0)
    assert (result.width, result.height, result.duration) == (320, 240, 10.0)
    assert result.geometry == ()


def test_trim_then_cut_keeps_what_is_left_in_order():
    result = plan({"type": "trim", "start": 2, "end": 8}, {"type": "cut", "start": 4, "end": 5})
    assert result.ranges == ((2.0, 4.0), (5.0, 8.0))
    assert result.duration == pytest.approx(5.0)


def test_ranges_are_in_source_time_so_their_order_does_not_matter():
    a = plan({"type": "cut", "start": 4, "end": 5}, {"type": "trim", "start": 2, "end": 8})
    b = plan({"type": "trim", "start": 2, "end": 8}, {"type": "cut", "start": 4, "end": 5})
    assert a.ranges == b.ranges


def test_several_cuts_overlapping_and_at_the_edges():
    result = plan({"type": "cut", "start": 0, "end": 1}, {"type": "cut", "start": 3, "end": 5},
                  {"type": "cut", "start": 4, "end": 6}, {"type": "cut", "start": 9, "end": 10})
    assert result.ranges == ((1.0, 3.0), (6.0, 9.0))
    assert result.kept == pytest.approx(5.0)


def test_two_trims_intersect():
    assert plan({"type": "trim", "start": 1, "end": 6}, {"type": "trim", "start": 4, "end": 9}).ranges == ((4.0, 6.0),)


def test_split_changes_nothing():
    assert plan({"type": "split", "at": 5}).ranges == plan().ranges


def test_cutting_everything_is_refused():
    with pytest.raises(InvalidRequest, match="nothing"):
        plan({"type": "trim", "start": 2, "end": 4}, {"type": "cut", "start": 1, "end": 5})


@pytest.mark.parametrize(("edit", "field"), [
    ({"type": "trim", "start": 2, "end": 12}, "end"),
    ({"type": "cut", "start": 10.5, "end": 11}, "start"),
    ({"type": "trim", "start": 5, "end": 5}, "end"),
    ({"type": "cut", "start": -1, "end": 2}, "start"),
    ({"type": "split", "at": 11}, "at"),
    ({"type": "speed", "factor": 5}, "factor"),
    ({"type": "volume", "gain": True}, "gain"),
    ({"type": "volume", "gain": math.nan}, "gain"),
    ({"type": "wobble"}, "type"),
])
def test_bad_edits_name_their_index_and_field(edit, field):
    with pytest.raises(InvalidRequest) as caught:
        plan({"type": "split", "at": 1}, edit)
    assert "Edit 1" in str(caught.value)
    assert f"'{field}'" in str(caught.value)


def test_an_end_a_hair_past_the_duration_is_clamped():
    assert plan({"type": "trim", "start": 1, "end": 10.0004}).ranges == ((1.0, 10.0),)


def test_speed_divides_the_duration_and_factors_compose():
    result = plan({"type": "trim", "start": 0, "end": 8}, {"type": "speed", "factor": 2}, {"type": "speed", "factor": 2})
    assert result.speed == 4.0
    assert result.duration == pytest.approx(2.0)


@pytest.mark.parametrize(("speed", "chain"), [
    (1.0, [1.0]), (1.5, [1.5]), (2.0, [2.0]), (3.0, [2.0, 1.5]), (4.0, [2.0, 2.0]),
    (0.5, [0.5]), (0.25, [0.5, 0.5]), (0.3, [0.5, 0.6]),
])
def test_atempo_chain_keeps_each_factor_in_range(speed, chain):
    assert atempo_chain(speed) == pytest.approx(chain)
    assert math.prod(atempo_chain(speed)) == pytest.approx(speed)


def test_fades_apply_to_the_result_and_a_later_value_wins():
    result = plan({"type": "fade", "in": 1, "out": 2}, {"type": "fade", "in": 0.5}, {"type": "trim", "start": 0, "end": 6},
                  {"type": "speed", "factor": 2})
    assert (result.fade_in, result.fade_out) == (0.5, 2.0)
    assert result.duration == pytest.approx(3.0)


def test_a_fade_longer_than_the_result_is_refused():
    with pytest.raises(InvalidRequest, match=r"Edit 0: field 'out'"):
        plan({"type": "fade", "out": 4}, {"type": "trim", "start": 0, "end": 3})


def test_volume_gains_multiply_and_zero_mutes():
    assert plan({"type": "volume", "gain": 2}, {"type": "volume", "gain": 1.5}).gain == 3.0
    assert plan({"type": "volume", "gain": 0}).gain == 0.0


def test_scale_with_minus_one_keeps_the_aspect_and_even_sizes():
    assert plan({"type": "scale", "width": 160, "height": -1}).geometry == (Scale(160, 120),)
    odd = plan({"type": "scale", "width": -1, "height": 101}, width=1920, height=1080)
    assert (odd.width, odd.height) == (180, 102)
    assert all(size % 2 == 0 for size in (odd.width, odd.height))


def test_crop_applies_to_the_scaled_picture():
    result = plan({"type": "scale", "width": 640, "height": 480}, {"type": "crop", "x": 300, "y": 200, "width": 301, "height": 280})
    assert result.geometry == (Scale(640, 480), Crop(300, 200, 300, 280))
    assert (result.width, result.height) == (300, 280)


def test_crop_outside_the_picture_names_the_field():
    with pytest.raises(InvalidRequest, match=r"Edit 0: field 'width'"):
        plan({"type": "crop", "x": 200, "y": 0, "width": 200, "height": 100})
    with pytest.raises(InvalidRequest, match=r"Edit 1: field 'height'"):
        plan({"type": "scale", "width": 160, "height": 120}, {"type": "crop", "x": 0, "y": 50, "width": 100, "height": 100})


def test_an_odd_source_is_cropped_to_even():
    result = plan(width=321, height=241)
    assert result.geometry == (Crop(0, 0, 320, 240),)


def test_spans_join_ranges_closer_than_a_seek_is_worth():
    result = plan({"type": "cut", "start": 1, "end": 2}, {"type": "cut", "start": 3, "end": 7},
                  {"type": "cut", "start": 8, "end": 8.5}, duration=10)
    assert result.ranges == ((0.0, 1.0), (2.0, 3.0), (7.0, 8.0), (8.5, 10.0))
    assert result.spans(2.0) == [(0.0, 3.0), (7.0, 10.0)]
    assert result.spans(4.0) == [(0.0, 10.0)]
    assert result.spans(0.5) == [(0.0, 1.0), (2.0, 3.0), (7.0, 10.0)]
