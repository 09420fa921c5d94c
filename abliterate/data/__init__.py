"""Package data: the labelled refusal set (refusal_labelled.jsonl)."""
