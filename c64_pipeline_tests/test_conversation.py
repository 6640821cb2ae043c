"""One conversation shape, held the same way where conversations come in (curated lines) and where they are read to
train on (the jsonl splits)."""

import json
import re

import pytest

from c64_pipeline.conversation import Conversation, final_answer, shape_problem
from c64_pipeline.datasets.curated_sft import load_curated_conversations
from c64_pipeline.training.data import TrainingDataError, read_conversations

GOOD = [{"role": "system", "content": "S"}, {"role": "user", "content": "Where is the border colour?"},
        {"role": "assistant", "content": "[THINK]The VIC-II table lists EXTCOL.[/THINK]$D020 (53280)."}]

BAD = {
    "two user turns in a row": ([GOOD[0], GOOD[1], GOOD[1], GOOD[2]], "alternate"),
    "reasoning without markers": ([GOOD[0], GOOD[1], {"role": "assistant", "content": "It is $D020."}], "missing [THINK]"),
    "no answer after the reasoning": ([GOOD[1], {"role": "assistant", "content": "[THINK]Table.[/THINK] "}], "empty final answer"),
    "ends with the question": ([GOOD[0], GOOD[1]], "end with an assistant"),
    "unknown role": ([{"role": "tool", "content": "x"}, *GOOD[1:]], "role"),
}


@pytest.mark.parametrize("why", sorted(BAD))
def test_a_conversation_that_is_not_the_trained_shape_is_refused_alike_by_curation_and_training(tmp_path, why):
    messages, problem = BAD[why]
    assert problem in shape_problem(messages)
    curated = tmp_path / "curated"
    curated.mkdir()
    (curated / "mine.jsonl").write_text(json.dumps({"messages": GOOD}) + "\n" + json.dumps({"messages": messages}) + "\n")
    kept, rejected = load_curated_conversations(curated, "SYSTEM")
    assert len(kept) == 1 and rejected == [{"file": "mine.jsonl", "line": 2, "reason": shape_problem(messages)}]
    split = tmp_path / "train.jsonl"
    split.write_text(json.dumps({"messages": GOOD}) + "\n" + json.dumps({"messages": messages}) + "\n")
    with pytest.raises(TrainingDataError, match=rf"train\.jsonl:2: .*{re.escape(problem)}"):
        read_conversations(split)


def test_training_reads_the_chat_messages_of_each_line():
    conversation = Conversation(tuple(GOOD), ({"doc_id": "vic", "page": 1, "line": 2, "evidence": "$D020"},), "vic", "register")
    assert shape_problem(list(conversation.messages)) is None
    assert conversation.final_answers == ["$D020 (53280)."] and final_answer("no markers ") == "no markers"
    assert conversation.cites("vic") and not conversation.cites("sid")


def test_the_jsonl_line_of_a_conversation_reads_back_as_the_same_record(tmp_path):
    conversation = Conversation(tuple(GOOD), ({"doc_id": "vic", "page": 1, "line": 2, "evidence": "$D020"},), "vic", "register")
    line = json.dumps(conversation.to_dict())
    assert list(json.loads(line)) == ["messages", "source_refs", "doc_id", "family", "origin"]
    assert Conversation.from_dict(json.loads(line)) == conversation
    split = tmp_path / "train.jsonl"
    split.write_text(line + "\n")
    assert read_conversations(split) == [GOOD]
