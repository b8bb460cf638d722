"""Generalisation hierarchies: for one quasi-identifier, a table whose column 0 is the original value and column
``j`` its value at generalisation level ``j`` (the ARX CSV format: ``;``-separated, no header).

    age = Hierarchy.from_csv("adult_hierarchy_age.csv", name="age")
    age = interval_hierarchy(df["age"], widths=(5, 10, 20), name="age")     # 39 → 35-39 → 30-39 → 20-39 → *
    when = date_hierarchy(df["visit_date"], name="visit_date")               # 2024-03-07 → 2024-03 → 2024 → *
    where = division_hierarchy(df["division"], name="division")             # 330106 → 330100 → 330000 → *

A hierarchy is checked when built: rows of equal length, no value listed twice with different generalisations,
and monotone (values equal at level j stay equal at level j+1, so the levels form a tree). Data values are
matched by their text, ``str(value)``.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from services.anonymity.errors import HierarchyInvalid, HierarchyMissingValue, HierarchyNotMonotone

TOP = "*"
_SHOWN = 10


class Hierarchy:
    """One quasi-identifier's generalisation hierarchy; row ``i`` is ``(original, level 1, …, top)``."""

    def __init__(self, rows: Iterable[Sequence[object]], name: str = "") -> None:
        self.name = name
        table: list[tuple[str, ...]] = []
        index: dict[str, int] = {}
        for row in rows:
            cells = tuple(str(cell) for cell in row)
            if not cells:
                continue
            if table and len(cells) != len(table[0]):
                raise HierarchyInvalid(
                    f"层级各行长度不一 hierarchy rows differ in length for {self._what}: row {cells!r} has "
                    f"{len(cells)} levels, the first row {len(table[0])}",
                    column=name, row=list(cells),
                )
            seen = index.get(cells[0])
            if seen is not None:
                if table[seen] != cells:
                    raise HierarchyInvalid(
                        f"层级重复列出取值 hierarchy lists value {cells[0]!r} twice, differently, for {self._what}: "
                        f"{table[seen]!r} and {cells!r}",
                        column=name, value=cells[0],
                    )
                continue
            index[cells[0]] = len(table)
            table.append(cells)
        if not table:
            raise HierarchyInvalid(f"层级为空 hierarchy for {self._what} has no rows", column=name)
        self._table = tuple(table)
        self._index = index
        self._codes: list[np.ndarray] = []
        self._labels: list[tuple[str, ...]] = []
        for level in range(len(table[0])):
            codes, labels = pd.factorize(np.array([row[level] for row in table], dtype=object))
            self._codes.append(codes.astype(np.int64))
            self._labels.append(tuple(labels))
        self._up = [self._parent_map(level) for level in range(self.height - 1)]

    # ------------------------------------------------------------------ building

    @classmethod
    def from_csv(cls, path: str | Path, name: str | None = None, sep: str = ";", encoding: str = "utf-8-sig"
                 ) -> Hierarchy:
        """Read an ARX hierarchy file (``sep``-separated, no header, one row per original value)."""
        path = Path(path)
        try:
            with path.open(encoding=encoding, newline="") as handle:
                rows = [row for row in csv.reader(handle, delimiter=sep) if row and any(cell for cell in row)]
        except OSError as exc:
            raise HierarchyInvalid(f"无法读取层级文件 cannot read hierarchy file {path}: {exc}", path=str(path)) from exc
        return cls(rows, name=path.stem if name is None else name)

    @classmethod
    def from_functions(cls, values: Iterable[object], functions: Sequence[Callable[[object], object]],
                       name: str = "", top: str | None = TOP) -> Hierarchy:
        """Level ``j`` of each distinct value is ``functions[j-1](value)``; ``top`` (if not None) is added last."""
        rows = []
        for value in _distinct(values):
            row = [value, *(function(value) for function in functions)]
            rows.append(row if top is None else [*row, top])
        return cls(rows, name=name)

    # ------------------------------------------------------------------ reading

    @property
    def height(self) -> int:
        """Number of levels, counting level 0 (the original values)."""
        return len(self._table[0])

    @property
    def max_level(self) -> int:
        return self.height - 1

    @property
    def values(self) -> tuple[str, ...]:
        """The original values (column 0)."""
        return tuple(row[0] for row in self._table)

    @property
    def rows(self) -> tuple[tuple[str, ...], ...]:
        return self._table

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"Hierarchy({self.name!r}, values={len(self)}, levels={self.height})"

    def generalise(self, value: object, level: int) -> str:
        """The value of ``value`` at ``level``."""
        self._check_level(level)
        row = self._index.get(str(value))
        if row is None:
            self._missing([str(value)], 1)
        return self._table[row][level]

    def labels(self, level: int) -> tuple[str, ...]:
        """The distinct values at ``level``, in the order of their codes."""
        self._check_level(level)
        return self._labels[level]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self._table), columns=[f"level_{j}" for j in range(self.height)])

    def to_csv(self, path: str | Path, sep: str = ";") -> None:
        with Path(path).open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle, delimiter=sep, lineterminator="\n").writerows(self._table)

    # ------------------------------------------------------------------ encoding (used by the search)

    def row_index(self, values: pd.Series | Sequence[object], column: str | None = None) -> np.ndarray:
        """The hierarchy row of every value; raises HierarchyMissingValue for values not listed."""
        series = pd.Series(values, dtype=object).astype(str)
        rows = series.map(self._index)
        missing = rows.isna()
        if missing.any():
            absent = series[missing]
            self._missing(list(dict.fromkeys(absent)), int(missing.sum()), column)
        return rows.to_numpy(dtype=np.int64)

    def codes(self, level: int) -> np.ndarray:
        """For each row, the integer code of its value at ``level`` (codes index ``labels(level)``)."""
        return self._codes[level]

    def up(self, level: int) -> np.ndarray:
        """Maps a code at ``level`` to the code of its generalisation at ``level + 1``."""
        return self._up[level]

    # ------------------------------------------------------------------ internals

    @property
    def _what(self) -> str:
        return f"column {self.name!r}" if self.name else "this hierarchy"

    def _check_level(self, level: int) -> None:
        if not 0 <= level < self.height:
            raise HierarchyInvalid(
                f"层级不存在 level {level} does not exist for {self._what} (levels 0…{self.max_level})",
                column=self.name, level=level,
            )

    def _missing(self, absent: list[str], count: int, column: str | None = None) -> None:
        shown = ", ".join(repr(v) for v in absent[:_SHOWN]) + (" …" if len(absent) > _SHOWN else "")
        what = self._what if column is None else f"column {column!r}"
        raise HierarchyMissingValue(
            f"层级缺少取值 hierarchy lacks value {shown} for {what} ({count} records; "
            f"add a row for each value to the hierarchy)",
            column=self.name if column is None else column, values=absent[:100], records=count,
        )

    def _parent_map(self, level: int) -> np.ndarray:
        child, parent = self._codes[level], self._codes[level + 1]
        mapping = np.full(len(self._labels[level]), -1, dtype=np.int64)
        mapping[child] = parent
        conflict = mapping[child] != parent
        if conflict.any():
            row = int(np.argmax(conflict))
            label = self._table[row][level]
            parents = sorted({r[level + 1] for r in self._table if r[level] == label})
            raise HierarchyNotMonotone(
                f"层级不单调 hierarchy for {self._what} is not monotone: {label!r} at level {level} "
                f"generalises to {', '.join(map(repr, parents))} at level {level + 1}",
                column=self.name, level=level, value=label, generalisations=parents,
            )
        return mapping


# ---------------------------------------------------------------------- builders


def interval_hierarchy(values: Iterable[object], widths: Sequence[int] = (5, 10, 20), name: str = "",
                       top: str | None = TOP) -> Hierarchy:
    """Integers banded by each width in turn (bands start at multiples of the width): with widths (5, 10, 20),
    39 → "35-39" → "30-39" → "20-39" → "*". Each width must be a multiple of the one before it, so that the
    bands nest."""
    widths = [int(w) for w in widths]
    for previous, width in zip([1, *widths], widths, strict=False):
        if width < 1 or width % previous:
            raise HierarchyInvalid(
                f"区间宽度须为前一宽度的倍数 each width must be a positive multiple of the previous one, got {widths}",
                column=name, widths=widths,
            )

    def band(width: int) -> Callable[[object], str]:
        def label(value: object) -> str:
            low = _integer(value, name) // width * width
            return f"{low}-{low + width - 1}"
        return label

    return Hierarchy.from_functions(values, [band(w) for w in widths], name=name, top=top)


def date_hierarchy(values: Iterable[object], name: str = "", top: str | None = TOP) -> Hierarchy:
    """Dates → month (``YYYY-MM``) → year (``YYYY``) → ``*``; values are dates, datetimes or ISO strings."""

    def month(value: object) -> str:
        day = _date(value, name)
        return f"{day.year:04d}-{day.month:02d}"

    return Hierarchy.from_functions(values, [month, lambda v: f"{_date(v, name).year:04d}"], name=name, top=top)


_DIVISION = re.compile(r"\d{6}")


def division_hierarchy(values: Iterable[object], name: str = "", top: str | None = TOP) -> Hierarchy:
    """GB/T 2260 six-digit administrative division codes → prefecture (first four digits + "00") → province
    (first two digits + "0000") → ``*``: 330106 → 330100 → 330000 → *."""
    values = _distinct(values)
    bad = [v for v in values if not _DIVISION.fullmatch(str(v))]
    if bad:
        raise HierarchyInvalid(
            f"行政区划代码须为6位数字 division codes must be six digits (GB/T 2260), got "
            f"{', '.join(repr(str(v)) for v in bad[:_SHOWN])}",
            column=name, values=[str(v) for v in bad[:100]],
        )
    return Hierarchy.from_functions(
        values, [lambda v: str(v)[:4] + "00", lambda v: str(v)[:2] + "0000"], name=name, top=top,
    )


def suppression_hierarchy(values: Iterable[object], name: str = "", top: str = TOP) -> Hierarchy:
    """Two levels: the value, or ``*``."""
    return Hierarchy.from_functions(values, [], name=name, top=top)


def _distinct(values: Iterable[object]) -> list[object]:
    seen: dict[str, object] = {}
    for value in values:
        seen.setdefault(str(value), value)
    return list(seen.values())


def _integer(value: object, name: str) -> int:
    try:
        number = float(str(value))
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        raise HierarchyInvalid(f"不是整数 not an integer: {value!r} in column {name!r}", column=name, value=str(value))
    return int(number)


def _date(value: object, name: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        stamp = pd.Timestamp(str(value))
    except (ValueError, TypeError):
        stamp = pd.NaT
    if pd.isna(stamp):
        raise HierarchyInvalid(f"不是日期 not a date: {value!r} in column {name!r}", column=name, value=str(value))
    return stamp.date()
