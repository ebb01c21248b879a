"""Our search attributes: their keys, which a namespace lacks, and the command that adds them.

A workflow that upserts an attribute its namespace lacks fails its task and retries it for
ever; AirStalled is upserted only when a transfer stalls, so a missing one would wedge a
migration long after it started. The worker checks before it takes any work.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

REGION_KEY = SearchAttributeKey.for_int("AirRegion")
PHASE_KEY = SearchAttributeKey.for_keyword("AirPhase")
NODES_KEY = SearchAttributeKey.for_keyword_list("AirNodes")
KIND_KEY = SearchAttributeKey.for_keyword("AirKind")
# true while a transfer's lag has not shrunk for stall_after_s (on the drain: any of its moves)
STALLED_KEY = SearchAttributeKey.for_bool("AirStalled")
# a drain's moves finished, and those not finished (running or waiting)
MOVES_DONE_KEY = SearchAttributeKey.for_int("AirMovesDone")
MOVES_LEFT_KEY = SearchAttributeKey.for_int("AirMovesLeft")
SEARCH_ATTRIBUTES = (
    REGION_KEY,
    PHASE_KEY,
    NODES_KEY,
    KIND_KEY,
    STALLED_KEY,
    MOVES_DONE_KEY,
    MOVES_LEFT_KEY,
)


def type_name(indexed_type: int) -> str:
    """`INDEXED_VALUE_TYPE_KEYWORD_LIST` -> `KeywordList`, as the `temporal` CLI spells types."""
    name = IndexedValueType.Name(IndexedValueType.ValueType(indexed_type))
    words = name.removeprefix("INDEXED_VALUE_TYPE_").split("_")
    return "".join(w.capitalize() for w in words)


def declared() -> dict[str, str]:
    """Name -> CLI type name of every search attribute the workflows set."""
    return {key.name: type_name(key.indexed_value_type) for key in SEARCH_ATTRIBUTES}


async def missing(client: Client) -> dict[str, str] | None:
    """Ours that the client's namespace lacks or types otherwise; None if the server won't say
    (Temporal Cloud manages attributes through its own API)."""
    try:
        reply = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError as e:
        if e.status in (RPCStatusCode.UNIMPLEMENTED, RPCStatusCode.PERMISSION_DENIED):
            return None
        raise
    have = {name: type_name(kind) for name, kind in reply.custom_attributes.items()}
    return {name: kind for name, kind in declared().items() if have.get(name) != kind}


def create_command(namespace: str, attributes: dict[str, str]) -> str:
    """The `temporal` command that registers `attributes` in `namespace`."""
    pairs = " ".join(f"--name {name} --type {kind}" for name, kind in attributes.items())
    return f"temporal operator search-attribute create --namespace {namespace} {pairs}"
