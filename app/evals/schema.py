"""What a suite file holds, and reading one (YAML or JSON) into a checked, plain document.

A suite file::

    name: Basics
    description: Small things a small model should get right.
    prompts:
      - prompt: Say hello.
        checks:
          - {kind: contains, text: hello, ignore_case: true}
          - {kind: regex, pattern: "^\\\\W*hello"}
      - prompt: Give {"ok": true} as JSON.
        checks:
          - {kind: json, schema: {type: object, required: [ok]}}
      - prompt: Write add(a, b).
        checks:
          - kind: python
            tests: |
              from solution import add
              def test_add():
                  assert add(2, 3) == 5
          - {kind: judge, rubric: The code is short and readable.}

Every mistake is reported with where it is (``prompts[2].checks[0]``) and nothing is saved.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import regex
import yaml

from app.services import ServiceError

MAX_FILE_CHARS = 1_000_000
MAX_YAML_CHARS = 250_000  # YAML reads slowly (twice: refusals first); larger suites as JSON
MAX_PROMPTS = 100
KINDS = ("contains", "not_contains", "regex", "json", "python", "judge")


def _kind(name: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"kind": {"const": name}, **properties},
        "required": ["kind", *required],
        "additionalProperties": False,
    }


_TEXT = {"type": "string", "minLength": 1, "maxLength": 10_000}
_IGNORE_CASE = {"type": "boolean"}

CHECK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["kind"],
    "properties": {"kind": {"enum": list(KINDS)}},
    # Each kind's own fields, chosen by "kind" so an error names the right one.
    "allOf": [
        {
            "if": {"properties": {"kind": {"const": kind}}},
            "then": schema,
        }
        for kind, schema in (
            ("contains", _kind("contains", {"text": _TEXT, "ignore_case": _IGNORE_CASE}, ["text"])),
            (
                "not_contains",
                _kind("not_contains", {"text": _TEXT, "ignore_case": _IGNORE_CASE}, ["text"]),
            ),
            (
                "regex",
                _kind(
                    "regex",
                    {"pattern": {**_TEXT, "maxLength": 1_000}, "ignore_case": _IGNORE_CASE},
                    ["pattern"],
                ),
            ),
            ("json", _kind("json", {"schema": {"type": "object"}}, [])),
            ("python", _kind("python", {"tests": {**_TEXT, "maxLength": 50_000}}, ["tests"])),
            ("judge", _kind("judge", {"rubric": _TEXT}, ["rubric"])),
        )
    ],
}

SUITE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Switchboard evaluation suite",
    "type": "object",
    "required": ["name", "prompts"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 120, "pattern": r"\S"},
        "description": {"type": "string", "maxLength": 2_000},
        "prompts": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_PROMPTS,
            "items": {
                "type": "object",
                "required": ["prompt"],
                "additionalProperties": False,
                "properties": {
                    "prompt": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 20_000,
                        "pattern": r"\S",
                    },  # fmt: skip
                    "checks": {"type": "array", "maxItems": 10, "items": CHECK_SCHEMA},
                },
            },
        },
    },
}

_VALIDATOR = jsonschema.Draft202012Validator(SUITE_SCHEMA)


def _where(path: Any) -> str:
    where = ""
    for part in path:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where or "the file"


# libyaml's parser when PyYAML was built with it: the pure-Python one takes seconds on a big file.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_DEPTH = 32


def _refuse_aliases_and_depth(text: str) -> None:
    """Aliases would let a few lines expand into a huge document, and deep nesting makes the
    parser crawl; both are refused from the event stream, before anything is built."""
    depth = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise ServiceError("YAML aliases (*name) are not allowed in a suite file.")
        if isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ServiceError(f"A suite file nests at most {MAX_DEPTH} levels deep.")
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            depth -= 1


def _load(text: str) -> Any:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ServiceError(f"This is not valid JSON: {exc.msg} (line {exc.lineno}).") from None
        except (ValueError, RecursionError):  # a number too long to read, nesting too deep
            raise ServiceError("This JSON holds a number too long or nests too deeply.") from None
    if len(text) > MAX_YAML_CHARS:
        raise ServiceError(
            f"Keep a YAML suite file under {MAX_YAML_CHARS:,} characters, or send it as JSON."
        )
    try:
        _refuse_aliases_and_depth(text)
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "it cannot be read"
        raise ServiceError(f"This is not valid YAML or JSON: {problem}{where}.") from None
    except (ValueError, RecursionError):
        raise ServiceError(
            "This YAML holds a value too long to read or nests too deeply."
        ) from None


def validate_suite(document: Any) -> dict[str, Any]:
    """The document, checked against the schema and with its regexes and JSON schemas tried;
    a ServiceError naming the first mistake and where it is otherwise."""
    if not isinstance(document, dict):
        raise ServiceError("A suite file holds an object with a name and prompts.")
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(document))
    if error is not None:
        raise ServiceError(f"{_where(error.absolute_path)}: {error.message}")
    for p, prompt in enumerate(document["prompts"]):
        for c, check in enumerate(prompt.get("checks", [])):
            where = f"prompts[{p}].checks[{c}]"
            if check["kind"] == "regex":
                try:
                    regex.compile(check["pattern"])  # the dialect the check runs in
                except regex.error as exc:
                    raise ServiceError(
                        f"{where}: the regular expression is wrong: {exc}."
                    ) from None
            if check["kind"] == "json" and "schema" in check:
                try:
                    jsonschema.Draft202012Validator.check_schema(check["schema"])
                except jsonschema.SchemaError as exc:
                    raise ServiceError(
                        f"{where}: the JSON schema is wrong: {exc.message}"
                    ) from None
                except RecursionError:
                    raise ServiceError(f"{where}: the JSON schema nests too deeply.") from None
    return {
        "name": document["name"].strip(),
        "description": document.get("description", "").strip(),
        "prompts": [
            {"prompt": prompt["prompt"], "checks": list(prompt.get("checks", []))}
            for prompt in document["prompts"]
        ],
    }


def parse_suite(text: str) -> dict[str, Any]:
    """A suite file's text (YAML, or JSON, which is YAML too), read and validated."""
    if len(text) > MAX_FILE_CHARS:
        raise ServiceError(f"Keep a suite file under {MAX_FILE_CHARS:,} characters.")
    if not text.strip():
        raise ServiceError("The suite file is empty.")
    return validate_suite(_load(text))


def dump_suite(document: dict[str, Any], fmt: str) -> str:
    """A suite document as a YAML or JSON file."""
    if fmt == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
