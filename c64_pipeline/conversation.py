"""The shape of an assistant turn, defined once: `[THINK]short reasoning[/THINK]final answer`.

The markers are the Ministral 3 control tokens; the SFT builder writes them, the THINK metrics and the gates read
them, the tokenizer checks and the reasoning contract look them up by these names.
"""

THINK_OPEN = "[THINK]"
THINK_CLOSE = "[/THINK]"


def assistant_turn(reasoning: str, answer: str) -> str:
    """An assistant turn's content in the one form the project trains on."""
    return f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{answer}"
