"""Workflows schedule activities by name: every name a recorded history schedules (a running
workflow does the same) is one the worker registers, whichever class its method is in now."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from temporalio import activity

from activities.check import CheckActivities
from activities.membership import MembershipActivities
from activities.operations import OperationActivities
from activities.reading import ReadingActivities
from activities.transfer import TransferActivities

HISTORIES = Path(__file__).parent.parent / "histories"
CLASSES = [
    ReadingActivities,
    MembershipActivities,
    TransferActivities,
    CheckActivities,
    OperationActivities,
]


def registered() -> dict[str, type]:
    """Each activity name the worker registers, and the class whose method it is."""
    names: dict[str, type] = {}
    for cls in CLASSES:
        for member in vars(cls).values():
            defn = activity._Definition.from_callable(member)
            if defn is not None and defn.name is not None:
                assert defn.name not in names, f"{defn.name} in {names[defn.name]} and {cls}"
                names[defn.name] = cls
    return names


def scheduled(path: Path) -> set[str]:
    """The activity types a history schedules, local activities (markers) included."""
    names = set()
    for event in json.loads(path.read_text())["events"]:
        if (task := event.get("activityTaskScheduledEventAttributes")) is not None:
            names.add(task["activityType"]["name"])
        marker = event.get("markerRecordedEventAttributes", {})
        if marker.get("markerName") == "core_local_activity":
            data = marker["details"]["data"]["payloads"][0]["data"]
            names.add(json.loads(base64.b64decode(data))["activity_type"])
    return names


def test_every_activity_a_recorded_history_schedules_is_registered_under_its_name() -> None:
    histories = sorted(HISTORIES.glob("**/*.json"))
    wanted = set().union(*(scheduled(p) for p in histories))
    names = registered()
    assert {"create_local_peer", "probe_views", "check_region"} <= wanted, wanted
    assert wanted - names.keys() == set(), sorted(wanted - names.keys())
    # the by-resource split: what a membership step, a transfer and a read run
    assert names["inactivate_peer"] is names["activate_peer"] is MembershipActivities
    assert names["wait_transfer_complete"] is names["catch_up_dead_origin"] is TransferActivities
    assert names["capture_target"] is TransferActivities
    assert names["describe_region"] is names["describe_cluster"] is ReadingActivities
