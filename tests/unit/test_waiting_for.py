"""What a stalled transfer says it waits for, from the receivers' answers."""

from __future__ import annotations

from contracts.activity_models import TransferProgress
from workflows.machinery.progress import waiting_for


def slice_(**fields: object) -> TransferProgress:
    return TransferProgress.model_validate({"complete": False, "lag": 5, **fields})


def test_an_unreachable_receiver_comes_first() -> None:
    text = waiting_for(slice_(unreachable=[4], awaiting_snapshot=[4]), [4])
    assert text == "nodes [4] do not answer the worker"


def test_a_receiver_without_its_store_awaits_the_snapshot() -> None:
    assert waiting_for(slice_(awaiting_snapshot=[4]), [4]).startswith(
        "nodes [4] await their snapshot from the coordinator"
    )


def test_otherwise_the_origins_it_is_behind_on() -> None:
    text = waiting_for(slice_(behind={2: 12, 1: 300}), [4])
    assert text == (
        "nodes [4] apply nothing new; still to apply: 300 seqs from node 1, 12 seqs from node 2"
    )
