"""Getting records in: the synthetic province generator, readers, validation against the ontology,
quarantine with reason codes and idempotent loading."""

from ingest.load import LoadReport, load_folder

__all__ = ["LoadReport", "load_folder"]
