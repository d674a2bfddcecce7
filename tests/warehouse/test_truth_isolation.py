"""No dbt model may read the simulator's ground truth: features must be learnable from raw data alone."""

import json
import re

from ml.config import dbt_target_path, load_settings


def test_no_dbt_node_depends_on_the_truth_schema(dbt_manifest):
    truth_schema = load_settings().truth_schema
    manifest = json.loads((dbt_target_path() / "manifest.json").read_text())
    truth_sources = {uid for uid, source in manifest["sources"].items() if source["schema"] == truth_schema}
    reference = re.compile(rf"\b{re.escape(truth_schema)}\s*\.", re.IGNORECASE)
    offenders = [
        uid
        for uid, node in manifest["nodes"].items()
        if truth_sources & set(node.get("depends_on", {}).get("nodes", []))
        or reference.search(node.get("raw_code", ""))
    ]
    assert offenders == []
    # The check itself can fail: a model reading truth.<table> would be caught.
    assert reference.search(f"select * from {truth_schema}.impression_outcomes")
