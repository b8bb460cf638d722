"""The province writer: spilled parts make the same files as frames kept in memory."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ingest.writer import ProvinceWriter


def _fill(writer: ProvinceWriter) -> None:
    # Parts of one file that differ as generator steps do: a column missing from one part, a column
    # all null in one part, integers in one part and floats in another, nullable integers.
    writer.add_nodes("Encounter", pd.DataFrame({"source_id": ["E1", "E2"], "days": [3, 4],
                                                "ended_at": pd.to_datetime(["2025-01-02", None])}))
    writer.add_nodes("Encounter", pd.DataFrame({"source_id": ["E3"], "days": [2.5], "note": [None]}))
    writer.add_nodes("Encounter", pd.DataFrame({"source_id": ["E4"], "note": ["复诊 follow-up"]}))
    writer.add_nodes("Disease", pd.DataFrame({"code": ["A01", "B02"], "min_age": pd.array([5, None], "Int64")}))
    writer.add_edges("of_patient", ["E1", "E2"], ["R1", "R2"], "OutpatientEncounter", "Resident")
    writer.add_edges("of_patient", ["E3"], ["R1"], "InpatientEncounter", "Resident")
    writer.add_nodes("Empty", pd.DataFrame({"code": []}))


@pytest.mark.parametrize("spill_rows", [0, 3])
def test_spilled_parts_write_the_files_frames_in_memory_write(tmp_path, spill_rows):
    in_memory, spilled = ProvinceWriter(), ProvinceWriter(spill=tmp_path / "parts", spill_rows=spill_rows)
    _fill(in_memory)
    _fill(spilled)
    assert all(isinstance(part, pd.DataFrame) for part in in_memory.nodes["Encounter"])
    held = sum(isinstance(part, pd.DataFrame) for parts in (*spilled.nodes.values(), *spilled.edges.values())
               for part in parts)
    # Frames stay in memory up to spill_rows rows in all (when 3: the first two Encounter frames, of 2 and
    # 1 rows); every later frame goes to disk at once.
    assert (held, len(list((tmp_path / "parts").glob("*.parquet")))) == ((0, 6) if spill_rows == 0 else (2, 4))

    counts_a = in_memory.write(tmp_path / "a", {}, {})
    counts_b = spilled.write(tmp_path / "b", {}, {})

    assert counts_a == counts_b == {"Disease": 2, "Encounter": 4, "of_patient": 3}
    assert not (tmp_path / "parts").exists(), "the parts are removed once written"
    for rel in ("nodes/Encounter.parquet", "nodes/Disease.parquet", "edges/of_patient.parquet"):
        a, b = pq.read_table(tmp_path / "a" / rel).to_pandas(), pq.read_table(tmp_path / "b" / rel).to_pandas()
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
    enc = pq.read_table(tmp_path / "b" / "nodes/Encounter.parquet").to_pandas()
    assert list(enc.columns) == ["source_id", "days", "ended_at", "note"]
    assert enc["days"].tolist()[:3] == [3.0, 4.0, 2.5] and pd.isna(enc["days"].iat[3])
    assert enc["note"].tolist()[-1] == "复诊 follow-up" and enc["note"].isna().sum() == 3
    # One schema across the parts: pandas' own dtypes survive (a nullable integer stays one).
    assert str(pq.read_table(tmp_path / "b" / "nodes/Disease.parquet").to_pandas()["min_age"].dtype) == "Int64"
