"""README.md metadata (the YAML block at the top of a model, dataset or Space card), checked as the
Hub checks it: on `/api/validate-yaml` and when a commit adds a README.md."""

from __future__ import annotations

import json
from typing import Any

import yaml

from hubgate.errors import BadRequest

CARD = "README.md"
# Fields the Hub types strictly: a string, or a list of strings.
STRING_OR_LIST = ("license", "language", "tags", "datasets", "metrics", "library_name", "pipeline_tag", "base_model")


CARD_DATA_LIMIT = 1024 * 1024  # a larger README.md gets no `cardData` in repo info


def _header(content: str) -> str | None:
    """The YAML between the opening and closing `---` lines; None without a metadata block."""
    if not content.startswith("---"):
        return None
    header, found, _ = content[3:].partition("\n---")
    return header if found else None  # no closing line: the Hub reads no metadata block either


def card_data(data: bytes | None) -> dict[str, Any] | None:
    """A card's metadata as repo info's `cardData` (JSON values: dates become ISO strings), or None
    when the card has no valid metadata mapping."""
    try:
        header = _header(data.decode("utf-8")) if data is not None else None
        parsed: Any = yaml.safe_load(header) if header is not None else None
    except (UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(parsed, dict) or not parsed:
        return None
    loaded: dict[str, Any] = json.loads(json.dumps(parsed, default=_json_value))
    return loaded


def _json_value(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def metadata_errors(content: str) -> list[str]:
    """What is wrong with a card's metadata block (none without a block)."""
    header = _header(content)
    if header is None:
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
