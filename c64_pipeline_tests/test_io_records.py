"""Typed records across the Dagster boundary: the IO manager stores a record as plain JSON (its fields, as people
read them in the UI and the interim folder) and hands the next asset the same record back."""

import json

import pytest
from dagster import StaticPartitionsDefinition, build_input_context, build_output_context

from c64_pipeline import atomic
from c64_pipeline.base_model import ModelIdentity
from c64_pipeline.conversation import Conversation
from c64_pipeline.datasets.chunking import Chunk
from c64_pipeline.datasets.records import SftDataset
from c64_pipeline.datasets.splits import DocumentSplits
from c64_pipeline.defs.io_managers import STORED_RECORDS, JsonAssetStore
from c64_pipeline.ingest.documents import SourceDocument
from c64_pipeline.ingest.extraction import DocumentText, PageText

PARTITIONS = StaticPartitionsDefinition(["a-pdf", "b-txt"])


def _text(doc_id: str) -> DocumentText:
    page = PageText(doc_id, 1, "POKE 53280,0", "text_layer", 0.9, None, 12, flag=None, ocr_repairs=2)
    return DocumentText(doc_id, f"{doc_id}.pdf", None, (page, PageText(doc_id, 2, "", "none", 0.0, "empty", 0)))


def test_a_partitioned_record_is_stored_as_its_fields_and_loaded_as_the_same_record(tmp_path):
    store = JsonAssetStore(base_dir=str(tmp_path))
    value = _text("a-pdf")
    store.handle_output(build_output_context(asset_key="page_text", partition_key="a-pdf",
                                             asset_partitions_def=PARTITIONS), value)
    stored = json.loads((tmp_path / "page_text" / "a-pdf.json").read_text())
    assert stored == {"doc_id": "a-pdf", "file_name": "a-pdf.pdf", "error": None,
                      "pages": [p.to_dict() for p in value.pages]}
    assert stored["pages"][0]["ocr_repairs"] == 2
    loaded = store.load_input(build_input_context(asset_key="page_text", partition_key="a-pdf",
                                                  asset_partitions_def=PARTITIONS))
    assert loaded == value and isinstance(loaded.pages[0], PageText)


def test_a_run_over_several_partitions_stores_each_record_and_loads_them_by_partition(tmp_path):
    store = JsonAssetStore(base_dir=str(tmp_path))
    values = {key: _text(key) for key in PARTITIONS.get_partition_keys()}
    from dagster import PartitionKeyRange
    span = PartitionKeyRange("a-pdf", "b-txt")
    store.handle_output(build_output_context(asset_key="page_text", asset_partition_key_range=span,
                                             asset_partitions_def=PARTITIONS), values)
    loaded = store.load_input(build_input_context(asset_key="page_text", asset_partition_key_range=span,
                                                  asset_partitions_def=PARTITIONS))
    assert loaded == values


@pytest.mark.parametrize("asset, value", [
    ("token_chunks", [Chunk("d-0", "d", 0, "text", 3, 1, 2), Chunk("d-1", "d", 1, "more", 2, 2, 2)]),
    ("document_splits", DocumentSplits({"a": "train", "b": "test"}, ("a moved",), ("gone",), (("a", "b"),))),
    ("base_model", ModelIdentity("/m/tiny", ("Ministral3ForCausalLM",), "ministral3", ("model.safetensors",), "ab",
                                 "cd", "demo", 4096)),
    ("sft_dataset", SftDataset("/x/sft", {"train": 1}, {"train": [5]}, ({"line": 1},), 767,
                               {"a": {"candidates": 1}})),
])
def test_unpartitioned_records_and_lists_of_records_round_trip_through_plain_json(tmp_path, asset, value):
    store = JsonAssetStore(base_dir=str(tmp_path))
    store.handle_output(build_output_context(asset_key=asset), value)
    stored = json.loads((tmp_path / f"{asset}.json").read_text())
    assert stored == ([v.to_dict() for v in value] if isinstance(value, list) else value.to_dict())
    assert store.load_input(build_input_context(asset_key=asset)) == value


def test_a_value_stored_before_a_field_existed_loads_with_the_field_at_its_default(tmp_path):
    old = {"doc_id": "a", "page": 1, "text": "x", "method": "ocr", "quality": 0.5, "ocr_reason": "scan", "chars": 1}
    assert PageText.from_dict(old).ocr_repairs == 0 and PageText.from_dict(old).flag is None


def test_a_stored_value_with_a_field_the_record_does_not_know_is_refused_by_name():
    with pytest.raises(ValueError, match="SourceDocument.*'colour'"):
        SourceDocument.from_dict({"doc_id": "a", "colour": "blue"})


def test_assets_without_a_record_type_keep_plain_json(tmp_path):
    assert "validation_report" not in STORED_RECORDS
    store = JsonAssetStore(base_dir=str(tmp_path))
    store.handle_output(build_output_context(asset_key="validation_report"), {"totals": {"pages": 3}})
    assert store.load_input(build_input_context(asset_key="validation_report")) == {"totals": {"pages": 3}}


def test_sft_conversations_are_stored_once_in_the_jsonl_files_and_read_back_as_records(tmp_path):
    mined = Conversation(({"role": "system", "content": "S"}, {"role": "user", "content": "Where is EXTCOL?"},
                          {"role": "assistant", "content": "[THINK]The VIC-II table lists it.[/THINK]$D020."}),
                         ({"doc_id": "vic", "page": 3, "line": 7, "evidence": "$D020 EXTCOL"},), "vic", "register")
    curated = Conversation(mined.messages, ({"file": "mine.jsonl", "line": 1},), None, None, "curated:mine.jsonl")
    folder = tmp_path / "sft"
    atomic.write_file_set(folder, {f"{s}.jsonl": atomic.jsonl_writer([c.to_dict() for c in rows]) for s, rows
                                   in {"train": [mined, curated], "validation": [], "test": []}.items()})
    assert "family" not in json.loads((folder / "train.jsonl").read_text().splitlines()[1])  # curated: none named
    dataset = SftDataset(str(folder), {"train": 2, "validation": 0, "test": 0}, {"train": [40, 40]})
    store = JsonAssetStore(base_dir=str(tmp_path / "store"))
    store.handle_output(build_output_context(asset_key="sft_dataset"), dataset)
    assert "EXTCOL" not in (tmp_path / "store" / "sft_dataset.json").read_text()  # not a second copy
    loaded = store.load_input(build_input_context(asset_key="sft_dataset"))
    assert loaded.conversations("train") == [mined, curated] and loaded.conversations("test") == []


def test_an_sft_dataset_stored_with_its_conversations_inline_loads_with_their_counts():
    old = {"dir": "/x/sft", "rows": {"train": [{"messages": []}, {"messages": []}], "test": []}, "token_counts": {}}
    assert SftDataset.from_dict(old).rows == {"train": 2, "test": 0}
