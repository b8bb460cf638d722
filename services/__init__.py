"""Domain services over the graph (records, privacy, audit), the FastAPI app and the `healthgraph` CLI."""
