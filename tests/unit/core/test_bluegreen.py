"""Blue-green transitions: properties over random sequences of releases and rollbacks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.config import ModelSlot, ReleaseRecord
from pipelines.core import bluegreen
from pipelines.core.bluegreen import LiveDeployment, NoPreviousRelease, compare_live


def record(n: int) -> ReleaseRecord:
    return ReleaseRecord(
        release_id=f"digits-{n:012d}",
        image=f"r.example/d@sha256:{n:064x}",
        model_sha256=f"{n:064x}",
        data_md5="0" * 32 + ".dir",
        source_commit="a" * 40,
        metrics={"accuracy": 0.9},
        released_at="2026-11-21T00:00:00Z",
    )


def invariants(slot: ModelSlot) -> None:
    if slot.blue is None and slot.green is None:
        assert slot.active is None
        return
    assert slot.active in ("blue", "green")
    assert slot.color(slot.active) is not None, "the active color holds a release"
    assert slot.idle == ("green" if slot.active == "blue" else "blue")
    assert slot.idle != slot.active


ops = st.lists(
    st.one_of(
        st.tuples(st.just("release"), st.integers(0, 5)), st.tuples(st.just("rollback"), st.just(0))
    ),
    max_size=40,
)


@settings(max_examples=300)
@given(ops)
def test_every_sequence_keeps_one_active_color_and_the_preview_the_other(
    sequence: list[tuple[str, int]],
) -> None:
    slot = ModelSlot()
    for op, n in sequence:
        before = slot
        if op == "release":
            t = bluegreen.release(slot, record(n))
            if t.changed:
                assert t.slot.color(t.slot.active).release_id == record(n).release_id  # type: ignore[arg-type, union-attr]
                # What served before is still deployed, in the idle color.
                if before.active is not None:
                    assert t.slot.color(t.slot.idle) == before.color(before.active)  # type: ignore[arg-type]
            else:
                assert t.slot == before
            slot = t.slot
        else:
            try:
                t = bluegreen.rollback(slot)
            except NoPreviousRelease:
                assert slot.active is None or slot.color(slot.idle) is None  # type: ignore[arg-type]
                continue
            assert t.slot.active == before.idle
            assert (t.slot.blue, t.slot.green) == (before.blue, before.green)
            slot = t.slot
        invariants(slot)
        ModelSlot.model_validate(slot.model_dump())  # still a valid state


def test_releasing_what_serves_is_a_no_op() -> None:
    slot = bluegreen.release(ModelSlot(), record(1)).slot
    assert bluegreen.release(slot, record(1)).changed is False


def test_release_then_rollback_then_release_again() -> None:
    s1 = bluegreen.release(ModelSlot(), record(1)).slot
    assert (s1.active, s1.blue.release_id) == ("blue", record(1).release_id)  # type: ignore[union-attr]
    s2 = bluegreen.release(s1, record(2)).slot
    assert s2.active == "green"
    s3 = bluegreen.rollback(s2).slot
    assert s3.active == "blue"
    assert s3.green == record(2)
    # The next release overwrites the rolled-back one, keeping the good one warm.
    s4 = bluegreen.release(s3, record(3))
    assert s4.slot.active == "green"
    assert s4.replaced == record(2)
    assert s4.slot.blue == record(1)


def test_rollback_needs_a_previous_release() -> None:
    with pytest.raises(NoPreviousRelease, match="nothing is deployed"):
        bluegreen.rollback(ModelSlot())
    with pytest.raises(NoPreviousRelease, match="no previous release"):
        bluegreen.rollback(bluegreen.release(ModelSlot(), record(1)).slot)


def test_an_inconsistent_state_is_refused() -> None:
    with pytest.raises(ValueError, match="holds no release"):
        ModelSlot(active="green", blue=record(1))
    with pytest.raises(ValueError, match="no color is active"):
        ModelSlot(blue=record(1))


def test_live_comparison_names_every_difference() -> None:
    slot = bluegreen.release(bluegreen.release(ModelSlot(), record(1)).slot, record(2)).slot
    ok = {
        "blue": LiveDeployment("blue", record(1).image, 2, 2),
        "green": LiveDeployment("green", record(2).image, 2, 2),
    }
    assert compare_live(slot, ok, "green") == []
    drift = {"blue": LiveDeployment("blue", record(3).image, 1, 2)}
    findings = compare_live(slot, drift, "blue")
    assert any("the cluster runs" in f for f in findings)
    assert any("1/2 pods ready" in f for f in findings)
    assert any("green: digits-000000000002 is in git but not deployed" in f for f in findings)
    assert any("the Service selects blue, git says green" in f for f in findings)


def test_age() -> None:
    assert bluegreen.age("2026-11-20T10:00:00Z", "2026-11-21T12:30:00Z") == "1d 2h"
    assert bluegreen.age("2026-11-21T10:00:00Z", "2026-11-21T12:30:00Z") == "2h 30m"
    assert bluegreen.age("2026-11-21T12:29:00Z", "2026-11-21T12:30:00Z") == "1m"


def _released(*numbers: int) -> ModelSlot:
    slot = ModelSlot()
    for n in numbers:
        slot = bluegreen.release(slot, record(n)).slot
    return slot


def test_a_second_rollback_would_undo_the_first_and_is_refused() -> None:
    rolled = bluegreen.rollback(_released(1, 2)).slot  # 1 serves, 2 idle
    history = [
        {
            "Release-Id": record(1).release_id,
            "Environment": "staging",
            "Rollback-Of": record(2).release_id,
        },
        {"Release-Id": record(2).release_id, "Environment": "staging"},
    ]
    undone = bluegreen.rolled_back_from(rolled, "staging", history)
    assert undone == record(2).release_id
    with pytest.raises(
        bluegreen.WouldReactivate,
        match="took digits-000000000002 out of service; rolling back again would "
        "make digits-000000000002 \\(green\\) serve instead of "
        "digits-000000000001",
    ) as caught:
        bluegreen.rollback(rolled, undone)
    assert isinstance(caught.value, NoPreviousRelease)
    again = bluegreen.rollback(rolled, undone, reactivate=True)
    assert again.slot.color(again.color) == record(2)


def test_what_made_the_serving_release_serve_decides() -> None:
    rolled = bluegreen.rollback(_released(1, 2)).slot
    staging_rollback = {
        "Release-Id": record(1).release_id,
        "Environment": "staging",
        "Rollback-Of": record(2).release_id,
    }
    # A rollback of another environment, or an older one, is not what made 1 serve here.
    assert bluegreen.rolled_back_from(rolled, "production", [staging_rollback]) is None
    assert (
        bluegreen.rolled_back_from(
            rolled,
            "staging",
            [
                {"Release-Id": record(1).release_id, "Environment": "staging"},  # re-released since
                staging_rollback,
            ],
        )
        is None
    )
    assert bluegreen.rolled_back_from(rolled, "staging", []) is None
    assert bluegreen.rolled_back_from(ModelSlot(), "staging", [staging_rollback]) is None
    # A normal rollback (what serves came from a release) is not refused.
    slot = _released(1, 2)
    undone = bluegreen.rolled_back_from(
        slot, "staging", [{"Release-Id": record(2).release_id, "Environment": "staging"}]
    )
    assert bluegreen.rollback(slot, undone).slot.active == "blue"
    # After a rollback, the next release replaces the removed one: rollback works again.
    s3 = bluegreen.release(rolled, record(3)).slot
    assert bluegreen.rollback(
        s3,
        bluegreen.rolled_back_from(
            s3,
            "staging",
            [{"Release-Id": record(3).release_id, "Environment": "staging"}, staging_rollback],
        ),
    ).slot.color("blue") == record(1)
