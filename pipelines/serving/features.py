"""The feature schema at serving time, and the one preprocessing that turns raw values into
model inputs: training, evaluation and the server all call ``encode`` here, so what the model
learnt from is, value for value, what production feeds it (no train/serve skew).

Two forms, as model.yaml's ``data.features`` states them:

- ``ImageSchema``, the shorthand for image models: ``count`` numeric columns ``<prefix><i>``
  in one range ``[min, max]``, scaled to [0, 1] and shaped ``(n, h, w, 1)``.
- ``TableSchema``, a list of named features, each ``float``, ``int``, ``bool`` or
  ``categorical``, each optionally nullable. One row becomes one flat float32 vector, each
  feature's columns in the schema's order:

  ========================  ======================================================
  float, int (min, max)     one column, ``(v - min) / (max - min)``: the declared
                            range, so the encoding is stateless (nothing is fitted)
  bool                      one column, 1.0 for true, 0.0 for false
  categorical (values)      one-hot, one column per vocabulary entry, in its order
  nullable (any type)       one more column, the is-null indicator: 1.0 when the value
                            is null, when every other column of the feature is 0.0
  ========================  ======================================================

  Categorical encoding happens here, in numpy, because LiteRT has no string ops: the model
  only ever sees numbers. The names of the encoded columns (``f``, ``f=value``, ``f:null``)
  are what the reference profile and the monitoring gauges are keyed by.

Standard library and numpy only: the serving image carries this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

FEATURE_TYPES = ("float", "int", "bool", "categorical")
NUMERIC = ("float", "int")
NULL_SUFFIX = ":null"  # the is-null indicator column of a nullable feature


def scale_features(
    raw: NDArray[Any], low: float, high: float, image_shape: tuple[int, int]
) -> NDArray[np.float32]:
    """Raw feature rows (n, h*w) in [low, high] -> model inputs (n, h, w, 1) in [0, 1]: the
    image shorthand's preprocessing."""
    x = np.asarray(raw, dtype=np.float32)
    x = ((x - np.float32(low)) / np.float32(high - low)).astype(np.float32, copy=False)
    return x.reshape(-1, image_shape[0], image_shape[1], 1)


def is_null(value: Any) -> bool:
    """Whether a raw value is missing: None (JSON null), NaN (pandas' missing number) or
    pandas' NA (a nullable column), recognised without importing pandas."""
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return bool(value != value)
    return type(value).__name__ == "NAType"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True)
class Feature:
    """One named feature: its type, its valid range (numeric) or vocabulary (categorical), and
    whether it may be null."""

    name: str
    type: str
    min: float | None = None
    max: float | None = None
    values: tuple[str | int, ...] = ()
    nullable: bool = False
    _index: dict[Any, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The vocabulary's positions, looked up once per value when encoding.
        self._index.update({v: i for i, v in enumerate(self.values)})

    @property
    def encoded_names(self) -> list[str]:
        """The names of the model-input columns this feature becomes."""
        base = (
            [f"{self.name}={v}" for v in self.values] if self.type == "categorical" else [self.name]
        )
        return [*base, f"{self.name}{NULL_SUFFIX}"] if self.nullable else base

    @property
    def width(self) -> int:
        """How many model-input columns this feature becomes."""
        return (len(self.values) if self.type == "categorical" else 1) + int(self.nullable)

    def problem(self, value: Any) -> str | None:
        """Why a JSON value is not valid for this feature, or None. Strict types: a number
        sent as a string, or true for a number, is refused, not converted."""
        if value is None:
            return None if self.nullable else "is null, and this feature may not be null"
        t = type(value)
        if self.type in NUMERIC:
            if t is not int and t is not float:
                return f"must be {'an integer' if self.type == 'int' else 'a number'}"
            if self.type == "int" and t is float and not value.is_integer():
                return "must be an integer"
            assert self.min is not None
            assert self.max is not None
            if not self.min <= value <= self.max:  # NaN fails too (orjson never yields one)
                return f"is outside the valid range [{_number(self.min)}, {_number(self.max)}]"
            return None
        if self.type == "bool":
            return None if t is bool else "must be true or false"
        want = type(self.values[0])
        # An integer vocabulary takes an integral float (JSON does not tell 1 from 1.0), as
        # int features do; never a bool, nor a string for a number or a number for a string.
        if want is int and t is float and value.is_integer():
            t = int
        if t is not want or value not in self._index:
            shown = ", ".join(repr(v) if isinstance(v, str) else str(v) for v in self.values[:10])
            more = f", ... ({len(self.values)} values)" if len(self.values) > 10 else ""
            return f"is not in the vocabulary [{shown}{more}]"
        return None

    def encode_into(
        self, column: Sequence[Any] | NDArray[Any], out: NDArray[np.float32], at: int
    ) -> None:
        """Write this feature's encoded columns for ``column`` (raw values, one per row) into
        ``out[:, at : at + width]``. ``out`` starts as zeros."""
        null = np.fromiter((is_null(v) for v in column), dtype=bool, count=len(column))
        if self.type == "categorical":
            for i, value in enumerate(column):
                if not null[i]:
                    try:
                        out[i, at + self._index[value]] = 1.0
                    except KeyError:  # validation refuses these before anything is encoded
                        raise ValueError(
                            f"feature {self.name}: {value!r} is not in the vocabulary"
                        ) from None
        else:
            x = np.array([0.0 if n else float(v) for v, n in zip(column, null, strict=True)])
            if self.type in NUMERIC:
                assert self.min is not None
                assert self.max is not None
                x = (x - self.min) / (self.max - self.min)
                x[null] = 0.0
            out[:, at] = x
        if self.nullable:
            out[:, at + self.width - 1] = null

    def to_dict(self) -> dict[str, Any]:
        """The feature as signature.json holds it."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "nullable": self.nullable}
        if self.type in NUMERIC:
            out |= {"min": self.min, "max": self.max}
        if self.type == "categorical":
            out["values"] = list(self.values)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Feature:
        """A feature written by to_dict."""
        if raw.get("type") not in FEATURE_TYPES:
            raise ValueError(f"feature {raw.get('name')!r}: unknown type {raw.get('type')!r}")
        return cls(
            name=str(raw["name"]),
            type=str(raw["type"]),
            min=raw.get("min"),
            max=raw.get("max"),
            values=tuple(raw.get("values", ())),
            nullable=bool(raw.get("nullable", False)),
        )


@dataclass(frozen=True)
class ImageSchema:
    """The image shorthand: numeric columns in one range, shaped (h, w, 1)."""

    names: tuple[str, ...]
    shape: tuple[int, int]
    low: float
    high: float

    @property
    def monitored_names(self) -> list[str]:
        """What the reference profile and the input gauges are keyed by: the raw pixels."""
        return list(self.names)

    @property
    def monitored_range(self) -> float:
        """The span of one monitored value (the profile floors stddevs at a share of it)."""
        return self.high - self.low

    def encode(self, raw: NDArray[Any]) -> NDArray[np.float32]:
        """Raw rows (n, h*w) -> model inputs (n, h, w, 1)."""
        return scale_features(raw, self.low, self.high, self.shape)

    def monitored(self, raw: NDArray[Any]) -> NDArray[np.float64]:
        """The vectors the profile describes: the raw pixel values, unscaled."""
        return np.asarray(raw, dtype=np.float64)


@dataclass(frozen=True)
class TableSchema:
    """Named features, each encoded as the module's table says."""

    features: tuple[Feature, ...]

    @property
    def names(self) -> list[str]:
        """The raw feature names, in order: the order of a positional row."""
        return [f.name for f in self.features]

    @property
    def encoded_names(self) -> list[str]:
        """The names of the model-input columns, in order."""
        return [name for f in self.features for name in f.encoded_names]

    @property
    def width(self) -> int:
        """The length of one model input."""
        return sum(f.width for f in self.features)

    monitored_names = encoded_names

    @property
    def monitored_range(self) -> float:
        """Every encoded column lies in [0, 1]."""
        return 1.0

    def encode(self, columns: Sequence[Sequence[Any] | NDArray[Any]]) -> NDArray[np.float32]:
        """Raw values, one sequence per feature in the schema's order -> model inputs
        (n, width) float32. Nulls: None, NaN or pandas' NA."""
        if len(columns) != len(self.features):
            raise ValueError(f"expected {len(self.features)} columns, got {len(columns)}")
        n = len(columns[0]) if columns else 0
        out = np.zeros((n, self.width), dtype=np.float32)
        at = 0
        for feature, column in zip(self.features, columns, strict=True):
            feature.encode_into(column, out, at)
            at += feature.width
        return out

    def encode_rows(self, rows: Sequence[Sequence[Any]]) -> NDArray[np.float32]:
        """Raw rows (one value per feature, in order) -> model inputs: the server's form."""
        columns = [[row[j] for row in rows] for j in range(len(self.features))]
        return self.encode(columns)

    def monitored(self, encoded: NDArray[np.float32]) -> NDArray[np.float64]:
        """The vectors the profile describes: the encoded model inputs."""
        return np.asarray(encoded, dtype=np.float64)

    def to_list(self) -> list[dict[str, Any]]:
        """The schema as signature.json holds it."""
        return [f.to_dict() for f in self.features]

    @classmethod
    def from_list(cls, raw: list[dict[str, Any]]) -> TableSchema:
        """A schema written by to_list."""
        return cls(tuple(Feature.from_dict(f) for f in raw))

    def example(self) -> list[Any]:
        """A valid row: each numeric feature's minimum, false, each vocabulary's first value.
        verify builds its malformed requests by breaking one value of it."""
        out: list[Any] = []
        for f in self.features:
            if f.type in NUMERIC:
                assert f.min is not None
                out.append(math.ceil(f.min) if f.type == "int" else f.min)
            elif f.type == "bool":
                out.append(False)
            else:
                out.append(f.values[0])
        return out
