"""Points as columns: what goes in comes out, in order; columns that do not pair up are refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.columns import from_columns, to_columns
from protos import air_node_pb2 as pb

rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c.d", "é"]),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False),
    )
)


@given(rows)
def test_rows_round_trip_through_columns(given_rows: list[tuple[str, int, float]]) -> None:
    columns = to_columns(given_rows)
    assert len(columns.series) == len({s for s, _, _ in given_rows})  # each name once
    parsed = pb.Columns.FromString(columns.SerializeToString())
    assert from_columns(parsed) == given_rows


def test_columns_that_do_not_pair_up_are_refused() -> None:
    with pytest.raises(ValueError, match="1 series indexes, 2 timestamps and 2 values"):
        from_columns(pb.Columns(series=["a"], series_index=[0], timestamps=[1, 2], values=[1, 2]))
    with pytest.raises(ValueError, match="past the 1 series named"):
        from_columns(pb.Columns(series=["a"], series_index=[-1], timestamps=[1], values=[1]))
