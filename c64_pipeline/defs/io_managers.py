"""Asset values as JSON files, one per partition: readable by people, and able to store a run that
materializes many document partitions at once (a single-run backfill of new manuals).

Assets pass typed records (`c64_pipeline.records`): a record is stored as its `to_dict()`, and an asset named in
`STORED_RECORDS` is loaded back as that record type (a stored list as a list of them); any other asset's value is
plain JSON both ways."""

import hashlib
import json
from pathlib import Path
from typing import Any

from dagster import ConfigurableIOManager, InputContext, OutputContext

from c64_pipeline import atomic
from c64_pipeline.base_model import ModelIdentity
from c64_pipeline.datasets.chunking import Chunk
from c64_pipeline.datasets.records import DatasetFiles, SftDataset
from c64_pipeline.datasets.splits import DocumentSplits
from c64_pipeline.ingest.documents import SourceDocument
from c64_pipeline.ingest.extraction import DocumentText
from c64_pipeline.records import Record, to_json

# asset name -> the record its stored value holds (a list: one record per item)
STORED_RECORDS: dict[str, type[Record]] = {
    "base_model": ModelIdentity,
    "raw_pdfs": SourceDocument,
    "page_text": DocumentText,
    "token_chunks": Chunk,
    "document_splits": DocumentSplits,
    "dapt_dataset": DatasetFiles,
    "sft_dataset": SftDataset,
}
MAX_KEY_CHARS = 200  # file names are limited to 255 bytes: longer partition keys are shortened, plus a hash


def partition_file_name(key: str) -> str:
    """`<key>.json`, or for a key too long to be a file name, its first characters and a hash of the whole key."""
    if len(key.encode()) <= MAX_KEY_CHARS:
        return f"{key}.json"
    return f"{key.encode()[:MAX_KEY_CHARS - 17].decode(errors='ignore')}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def from_stored(asset: str, value: Any) -> Any:
    """A stored JSON value as the record type `asset` holds (`STORED_RECORDS`), or as it is."""
    record = STORED_RECORDS.get(asset)
    if record is None:
        return value
    if isinstance(value, list):
        return [record.from_dict(v) for v in value]
    return record.from_dict(value)


class JsonAssetStore(ConfigurableIOManager):
    """`<base_dir>/<asset>/<partition>.json` for partitioned assets, `<base_dir>/<asset>.json` otherwise.

    Loading several partitions (a corpus-wide asset reading every document) returns {partition: value} and
    skips partitions that were never materialized, such as a manual added since the last ingest run."""

    base_dir: str

    def _asset_dir(self, context: InputContext | OutputContext) -> Path:
        return Path(self.base_dir).joinpath(*context.asset_key.path)

    def _read(self, context: InputContext, path: Path) -> Any:
        return from_stored(context.asset_key.path[-1], json.loads(path.read_text(encoding="utf-8")))

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            return
        if not context.has_asset_partitions:
            atomic.write_json(self._asset_dir(context).with_suffix(".json"), to_json(obj))
            return
        keys = list(context.asset_partition_keys)
        values = obj if len(keys) > 1 else {keys[0]: obj}
        if set(values) != set(keys):
            raise ValueError(
                f"{context.asset_key.to_user_string()}: a run over several partitions must return a dict "
                f"keyed by partition, got keys {sorted(values)[:5]} for partitions {keys[:5]}"
            )
        for key, value in values.items():
            atomic.write_json(self._asset_dir(context) / partition_file_name(key), to_json(value))

    def load_input(self, context: InputContext) -> Any:
        if not context.has_asset_partitions:
            return self._read(context, self._asset_dir(context).with_suffix(".json"))
        folder = self._asset_dir(context)
        keys = list(context.asset_partition_keys)
        same_partition = context.has_partition_key and len(keys) == 1 and keys[0] == context.partition_key
        if same_partition:
            return self._read(context, folder / partition_file_name(keys[0]))
        loaded = {}
        for key in keys:
            path = folder / partition_file_name(key)
            if path.is_file():
                loaded[key] = self._read(context, path)
            else:
                context.log.warning(f"{context.asset_key.to_user_string()} has no stored value for partition {key}; skipped")
        return loaded
