"""The canonical event schema: column names, dtypes and the role each column plays.

Every adapter emits events with these column names; every prepared dataset records in its manifest
which columns play which role, so the tokenizer and the splits never guess.

An event is ``(user, timestamp, context, item, feedback)``:

=============  ==================  ===================================================================
role           columns             meaning
=============  ==================  ===================================================================
``user``       ``user_id``         who; any int or string in the raw data, dense internal index later
``item``       ``item_id``         what; internal ids start at 1, 0 is padding
``timestamp``  ``timestamp``       when; int64 seconds since the Unix epoch (or a position, see below)
``context``    any                 categorical: surface, organic vs recommended, device...; codes 1..n
``feedback``   any                 the reaction; ``binary`` (0/1) or ``continuous``; NaN = not observed
``item_feature`` any               attribute of the item (artist, genres, length); kept in the items table
``request``    ``request_id``      groups items shown together; -1 = none
``truth``      any                 simulator ground truth (true probabilities); never a model input
=============  ==================  ===================================================================
"""

from __future__ import annotations

from enum import Enum

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

USER_ID = "user_id"
ITEM_ID = "item_id"
TIMESTAMP = "timestamp"
REQUEST_ID = "request_id"

#: Internal columns an adapter may attach to its batches: the 1-based line of the row in its file,
#: and a reason string for rows the adapter already knows are bad (null when the row is fine).
LINE = "__line"
REJECT = "__reject"

PAD_ITEM = 0  # internal item id reserved for padding
NO_REQUEST = -1  # request_id of events that were not part of a shown slate
PAD_CODE = 0  # categorical code reserved for padding / missing


class Role(str, Enum):
    USER = "user"
    ITEM = "item"
    TIMESTAMP = "timestamp"
    CONTEXT = "context"
    FEEDBACK = "feedback"
    ITEM_FEATURE = "item_feature"
    REQUEST = "request"
    TRUTH = "truth"


class FeedbackKind(str, Enum):
    BINARY = "binary"
    CONTINUOUS = "continuous"


#: dtype of each role's column in the sequence store (see :mod:`argusrec.data.store`).
STORE_DTYPES: dict[Role, np.dtype] = {
    Role.ITEM: np.dtype(np.int32),
    Role.TIMESTAMP: np.dtype(np.int64),
    Role.CONTEXT: np.dtype(np.int32),
    Role.FEEDBACK: np.dtype(np.float32),
    Role.REQUEST: np.dtype(np.int64),
    Role.TRUTH: np.dtype(np.float32),
}

_FIXED_NAMES = {Role.USER: USER_ID, Role.ITEM: ITEM_ID, Role.TIMESTAMP: TIMESTAMP, Role.REQUEST: REQUEST_ID}


class ColumnSpec(BaseModel):
    """One column of the event table and the role it plays."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    role: Role
    kind: FeedbackKind | None = None  # feedback columns only
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> ColumnSpec:
        fixed = _FIXED_NAMES.get(self.role)
        if fixed is not None and self.name != fixed:
            raise ValueError(f"a {self.role.value} column must be named {fixed!r}, got {self.name!r}")
        if self.role is Role.FEEDBACK and self.kind is None:
            raise ValueError(f"feedback column {self.name!r} needs kind 'binary' or 'continuous'")
        if self.role is not Role.FEEDBACK and self.kind is not None:
            raise ValueError(f"column {self.name!r}: only feedback columns have a kind")
        if self.name.startswith("__"):
            raise ValueError(f"column names starting with '__' are reserved: {self.name!r}")
        return self


class DatasetSchema(BaseModel):
    """Which columns a dataset has and the role of each. ``user_id``/``item_id``/``timestamp`` are implied."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: tuple[ColumnSpec, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> DatasetSchema:
        names = [c.name for c in self.columns]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"columns declared twice: {sorted(dupes)}")
        for role in (Role.USER, Role.ITEM, Role.TIMESTAMP):
            if role in {c.role for c in self.columns}:
                raise ValueError(f"the {role.value} column is implied; do not declare it")
        return self

    @classmethod
    def of(
        cls,
        *,
        context: list[str] | tuple[str, ...] = (),
        feedback: dict[str, FeedbackKind | str] | None = None,
        item_features: list[str] | tuple[str, ...] = (),
        request: bool = False,
        truth: list[str] | tuple[str, ...] = (),
    ) -> DatasetSchema:
        """Shorthand constructor: ``DatasetSchema.of(context=["surface"], feedback={"like": "binary"})``."""
        cols = [ColumnSpec(name=n, role=Role.CONTEXT) for n in context]
        cols += [ColumnSpec(name=n, role=Role.FEEDBACK, kind=FeedbackKind(k)) for n, k in (feedback or {}).items()]
        cols += [ColumnSpec(name=n, role=Role.ITEM_FEATURE) for n in item_features]
        if request:
            cols.append(ColumnSpec(name=REQUEST_ID, role=Role.REQUEST))
        cols += [ColumnSpec(name=n, role=Role.TRUTH) for n in truth]
        return cls(columns=tuple(cols))

    def names(self, role: Role) -> list[str]:
        return [c.name for c in self.columns if c.role is role]

    @property
    def context(self) -> list[str]:
        return self.names(Role.CONTEXT)

    @property
    def feedback(self) -> list[str]:
        return self.names(Role.FEEDBACK)

    @property
    def item_features(self) -> list[str]:
        return self.names(Role.ITEM_FEATURE)

    @property
    def truth(self) -> list[str]:
        return self.names(Role.TRUTH)

    @property
    def has_request(self) -> bool:
        return bool(self.names(Role.REQUEST))

    def feedback_kind(self, name: str) -> FeedbackKind:
        for c in self.columns:
            if c.name == name and c.role is Role.FEEDBACK:
                assert c.kind is not None
                return c.kind
        raise KeyError(f"no feedback column {name!r}; feedback columns: {self.feedback}")

    def event_columns(self) -> list[str]:
        """All columns an adapter must emit per event (item features may instead come in the items table)."""
        return [USER_ID, ITEM_ID, TIMESTAMP] + [c.name for c in self.columns if c.role is not Role.ITEM_FEATURE]

    def store_columns(self) -> dict[str, np.dtype]:
        """Per-event columns of the sequence store and their dtypes (the user is implied by the CSR layout)."""
        out = {ITEM_ID: STORE_DTYPES[Role.ITEM], TIMESTAMP: STORE_DTYPES[Role.TIMESTAMP]}
        for c in self.columns:
            if c.role in STORE_DTYPES:
                out[c.name] = STORE_DTYPES[c.role]
        return out
