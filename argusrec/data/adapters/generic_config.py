"""The column map of the generic adapter: which raw column plays which role, from YAML/JSON or the CLI.

A config, e.g. ``events.yaml``::

    columns: {user_id: uid, item_id: song, timestamp: ts}   # canonical name -> raw column
    context: [surface]                                      # raw column = its own name unless mapped
    feedback: {like: binary, played: continuous}
    item_features: [artist]
    timestamp_unit: ms                                      # s | ms | us | ns | datetime
    separator: null                                         # null = sniff , \\t ; | ::
    header: true
    format: null                                            # csv | parquet | null = by extension

Unknown keys and bad values raise :class:`~argusrec.errors.DataError` naming them. Reading the
files is :func:`argusrec.data.adapters.generic.open_generic`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from argusrec.data.schema import ITEM_ID, REQUEST_ID, TIMESTAMP, USER_ID, DatasetSchema, FeedbackKind
from argusrec.errors import DataError

TimestampUnit = Literal["s", "ms", "us", "ns", "datetime"]
REQUIRED = (USER_ID, ITEM_ID, TIMESTAMP)
_SEPARATOR_WORDS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


class GenericConfig(BaseModel):
    """How to read a generic event log: which raw column plays which role (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: dict[str, str]  # canonical name -> raw column; user_id, item_id, timestamp required
    context: list[str] = []
    feedback: dict[str, FeedbackKind] = {}
    item_features: list[str] = []
    request_id: str | None = None  # raw column holding the request (slate) id
    timestamp_unit: TimestampUnit = "s"
    separator: str | None = None  # None = sniff
    header: bool = True
    names: list[str] | None = None  # field names of a text file without a header
    format: Literal["csv", "parquet"] | None = None  # None = by extension
    encoding: str = "utf-8"
    id_type: Literal["auto", "int", "string"] = "auto"
    name: str | None = None  # dataset name; default "generic-<file stem>"

    @field_validator("separator")
    @classmethod
    def _separator(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = _SEPARATOR_WORDS.get(value, value)
        if value != "::" and len(value) != 1:
            raise ValueError(f"separator must be one character or '::' (or 'tab'), got {value!r}")
        return value

    @model_validator(mode="after")
    def _check(self) -> GenericConfig:
        missing = [c for c in REQUIRED if c not in self.columns]
        if missing:
            raise ValueError(f"columns must map {missing} to raw columns, e.g. columns: {{user_id: uid}}")
        roles = set(REQUIRED) | set(self.context) | set(self.feedback) | set(self.item_features)
        unused = sorted(set(self.columns) - roles)
        if unused:
            raise ValueError(
                f"columns maps {unused}, which are not user_id/item_id/timestamp nor listed under "
                "context, feedback or item_features"
            )
        if not self.header and self.names is None:
            raise ValueError("header: false needs names: the field names of each line")
        try:
            self.dataset_schema()
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        raws = [self.raw(c) for c in self.outputs()]
        shared = sorted({r for r in raws if raws.count(r) > 1})
        if shared:
            raise ValueError(f"raw column(s) {shared} are used for more than one canonical column")
        return self

    def dataset_schema(self) -> DatasetSchema:
        return DatasetSchema.of(
            context=self.context,
            feedback=dict(self.feedback),
            item_features=self.item_features,
            request=self.request_id is not None,
        )

    def raw(self, name: str) -> str:
        """The raw column of canonical column ``name``."""
        if name == REQUEST_ID and self.request_id is not None:
            return self.request_id
        return self.columns.get(name, name)

    def outputs(self) -> list[str]:
        """Canonical columns read, in output order."""
        out = [*REQUIRED, *self.context, *self.feedback, *self.item_features]
        return out + ([REQUEST_ID] if self.request_id is not None else [])

    @classmethod
    def from_file(cls, path: str | Path) -> GenericConfig:
        """Load a YAML or JSON config; unknown keys and bad values raise :class:`DataError` naming them."""
        file = Path(path)
        if not file.is_file():
            raise DataError("config file not found", file=str(file))
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise DataError(f"not valid YAML/JSON ({exc})", file=str(file)) from exc
        if not isinstance(data, dict):
            raise DataError(f"expected a mapping of keys to values, got {type(data).__name__}", file=str(file))
        return cls.from_dict(data, file=str(file))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, file: str | None = None) -> GenericConfig:
        """Validate a config dict; problems raise :class:`DataError` (naming ``file`` when given)."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _config_error(exc, file) from None

    @classmethod
    def from_cli(
        cls,
        maps: list[str],
        *,
        context: list[str] | None = None,
        feedback: list[str] | None = None,
        item_features: list[str] | None = None,
        request_id: str | None = None,
        timestamp_unit: str = "s",
        separator: str | None = None,
        header: bool = True,
        names: list[str] | None = None,
        format: str | None = None,
        id_type: str = "auto",
        name: str | None = None,
    ) -> GenericConfig:
        """Build a config from command-line specs.

        ``maps``: ``["user_id=uid", "item_id=song", "timestamp=ts"]`` (canonical=raw);
        ``feedback``: ``["like:binary", "played:continuous"]``; names in ``context``,
        ``item_features`` and ``feedback`` are canonical (map them in ``maps`` if the raw column is
        named differently).
        """
        columns: dict[str, str] = {}
        for spec in maps:
            canonical, sep, raw = spec.partition("=")
            if not sep or not canonical.strip() or not raw.strip():
                raise DataError(f"bad column map {spec!r}: expected NAME=COLUMN, e.g. 'user_id=uid'")
            if canonical.strip() in columns:
                raise DataError(f"column {canonical.strip()!r} is mapped twice")
            columns[canonical.strip()] = raw.strip()
        kinds: dict[str, str] = {}
        for spec in feedback or []:
            fname, sep, kind = spec.partition(":")
            kind = kind.strip().lower()
            if not sep or not fname.strip() or kind not in ("binary", "continuous"):
                raise DataError(
                    f"bad feedback spec {spec!r}: expected NAME:binary or NAME:continuous, e.g. 'like:binary'"
                )
            kinds[fname.strip()] = kind
        data: dict[str, Any] = {
            "columns": columns,
            "context": list(context or []),
            "feedback": kinds,
            "item_features": list(item_features or []),
            "request_id": request_id,
            "timestamp_unit": timestamp_unit,
            "separator": separator,
            "header": header,
            "names": names,
            "format": format,
            "id_type": id_type,
            "name": name,
        }
        return cls.from_dict(data)


def _config_error(exc: ValidationError, file: str | None) -> DataError:
    known = sorted(GenericConfig.model_fields)
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "config"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key {key!r}")
        elif err["type"] == "missing":
            parts.append(f"missing key {key!r}")
        else:
            parts.append(f"{key}: {err['msg']}")
    hint = f"known keys: {', '.join(known)}"
    return DataError("bad generic config: " + "; ".join(parts), file=file, hint=hint)
