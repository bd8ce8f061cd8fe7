"""README.md metadata (the YAML block at the top of a model, dataset or Space card), checked as the
Hub checks it: on `/api/validate-yaml` and when a commit adds a README.md."""

from __future__ import annotations

from typing import Any

import yaml

from hubgate.errors import BadRequest

CARD = "README.md"
# Fields the Hub types strictly: a string, or a list of strings.
STRING_OR_LIST = ("license", "language", "tags", "datasets", "metrics", "library_name", "pipeline_tag", "base_model")


def metadata_errors(content: str) -> list[str]:
    """What is wrong with a card's metadata block (none without a block)."""
    if not content.startswith("---"):
        return []
    header, found, _ = content[3:].partition("\n---")
    if not found:  # no closing line: the Hub reads no metadata block either
        return []
    try:
        data: Any = yaml.safe_load(header)
    except yaml.YAMLError as exc:
        return [f"Invalid YAML in the card metadata: {exc}"]
    if data is None:
        return []
    if not isinstance(data, dict):
        return ["The card metadata must be a YAML mapping (key: value)"]
    errors = []
    for key in STRING_OR_LIST:
        value = data.get(key)
        if value is not None and not _string_or_strings(value):
            errors.append(f'"{key}" must be a string or a list of strings')
    return errors


def check_card(data: bytes) -> None:
    """Refuse a README.md whose metadata the Hub would refuse (huggingface_hub shows this message)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    errors = metadata_errors(text)
    if errors:
        raise BadRequest("Invalid metadata in README.md.\n" + "\n".join(f"- {e}" for e in errors))


def _string_or_strings(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
