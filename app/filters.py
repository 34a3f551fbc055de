"""Restrict a similarity search or the gallery by catalog columns: ``where=mag_r<=17.5``,
``where=morphology==ring``; and order the gallery by a column.

Each condition becomes a boolean mask over the survey's rows; the masks are combined with AND and handed to
FAISS as an id selector, so the index itself skips excluded galaxies and a search still returns k hits when
enough galaxies pass (no over-fetching and hoping).
"""

from __future__ import annotations

import operator
import re

import numpy as np
from astropy.table import Column, Table

CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|!=|<|>)\s*(.+?)\s*$")
OPERATORS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq, "!=": operator.ne, "<": operator.lt,
             ">": operator.gt}
MAX_CONDITIONS = 10


def scalar_columns(catalog: Table) -> list[str]:
    """The catalog's columns holding one value per galaxy: those a condition, a sort or a caption can use."""
    return [name for name in catalog.colnames if catalog[name].ndim == 1]


def catalog_column(catalog: Table, name: str) -> Column:
    """Column ``name`` of ``catalog``; ValueError unless it holds one value per galaxy."""
    if name not in catalog.colnames or catalog[name].ndim != 1:
        raise ValueError(f"unknown catalog column {name!r}")
    return catalog[name]


def as_numbers(column: Column) -> np.ndarray:
    """A numeric column as floats, NaN where blank (masked)."""
    return np.ma.filled(np.ma.asarray(column, dtype=float), np.nan)


def catalog_mask(catalog: Table, conditions: list[str]) -> np.ndarray:
    """Rows of ``catalog`` meeting every condition; ValueError (with the reason) for a malformed one."""
    if len(conditions) > MAX_CONDITIONS:
        raise ValueError(f"at most {MAX_CONDITIONS} conditions")
    mask = np.ones(len(catalog), bool)
    for text in conditions:
        m = CONDITION.match(text)
        if not m:
            raise ValueError(f"condition {text!r} is not of the form column<op>value with op one of "
                             f"{', '.join(OPERATORS)}")
        name, op, raw = m.groups()
        col = catalog_column(catalog, name)
        if col.dtype.kind in "biuf":
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"column {name!r} is numeric; {raw!r} is not a number") from None
            values = as_numbers(col)
            mask &= OPERATORS[op](values, value) & np.isfinite(values)
        else:
            if op not in ("==", "!="):
                raise ValueError(f"column {name!r} holds text: use == or !=")
            mask &= OPERATORS[op](np.char.strip(np.asarray(col).astype(str)), raw)
    return mask


def column_order(catalog: Table, name: str, descending: bool = False) -> np.ndarray:
    """Row numbers of ``catalog`` sorted by column ``name`` (numbers as numbers, else as text; blanks last);
    ValueError for a column it does not have."""
    col = catalog_column(catalog, name)
    if col.dtype.kind in "biuf":
        values = as_numbers(col)
        blank = ~np.isfinite(values)
        key = -values if descending else values
    else:
        values = np.char.strip(np.ma.filled(np.ma.asarray(col).astype(str), ""))
        blank = values == ""
        # Text sorts descending through its rank among the distinct values.
        key = np.unique(values, return_inverse=True)[1].ravel()
        key = -key if descending else key
    return np.lexsort((key, blank))  # stable: ties keep survey order
