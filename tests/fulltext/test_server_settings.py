"""The local OpenSearch node runs with the project's settings file, not the engine's defaults."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest
import yaml

from services import servers


def test_the_local_node_keeps_its_disk_watermarks_in_free_space(opensearch_url: str):
    if os.environ.get("HEALTHGRAPH_TEST_OPENSEARCH_URL"):
        pytest.skip("an external OpenSearch server: its settings are its operator's")
    wanted = yaml.safe_load((servers.HERE / "opensearch" / "opensearch.yml").read_text(encoding="utf-8"))
    with urllib.request.urlopen(f"{opensearch_url}/_cluster/settings?include_defaults=true&flat_settings=true",
                                timeout=10) as response:
        settings = json.load(response)
    effective = {**settings["defaults"], **settings["persistent"], **settings["transient"]}
    watermarks = {k: v for k, v in wanted.items() if ".disk.watermark." in k}
    assert len(watermarks) == 3
    assert {k: effective[k] for k in watermarks} == watermarks
    # absolute sizes: a percentage would block index creation on a big, busy disk with gigabytes free
    assert not any(str(v).endswith("%") for v in watermarks.values())
