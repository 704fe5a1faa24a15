"""numpy arrays to and from PostgreSQL's binary array format, through psycopg.

A one-dimensional array without nulls in binary form is a 20-byte header (number
of dimensions, null flag, element type oid, length, lower bound), then each
element as its byte length and its big-endian value: one numpy structured dtype
packs or unpacks the whole array in C, so a million numbers cost no Python
object each, either way (psycopg's own array loaders build a list: ~75 ms per
million elements measured here, before numpy copies it).
"""

import struct
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format

ELEMENT_OIDS = {"i4": 23, "i8": 20, "f8": 701}
TIMESTAMPTZ_OID = 1184
# int8[], float8[], timestamptz[]: returned as bytes by an ``array_cursor``.
RAW_ARRAY_OIDS = (1016, 1022, 1185)
_HEADER = struct.Struct(">5i")


class BinaryArray(bytes):
    """An array in binary form, sent with no type: the statement casts it
    (``%(name)b::int8[]``) and the server reads it with that type."""


def binary_array(
    values: npt.ArrayLike, kind: str, *, oid: int | None = None
) -> BinaryArray:
    """``values`` as a binary array of ``kind`` ("i4", "i8" or "f8"; ``oid``
    names another element type of that width, such as TIMESTAMPTZ_OID)."""
    packed = np.empty(np.shape(values)[0], [("length", ">i4"), ("value", ">" + kind)])
    packed["length"] = np.dtype(kind).itemsize
    packed["value"] = values
    element = ELEMENT_OIDS[kind] if oid is None else oid
    return BinaryArray(_HEADER.pack(1, 0, element, len(packed), 1) + packed.tobytes())


def array_values(data: bytes, kind: str) -> npt.NDArray[Any]:
    """The elements of a binary array of ``kind`` without nulls, native order."""
    if struct.unpack_from(">i", data)[0] == 0:  # no dimensions: empty
        return np.empty(0, kind)
    dtype = np.dtype([("length", ">i4"), ("value", ">" + kind)])
    return np.frombuffer(data, dtype, offset=_HEADER.size)["value"].astype(kind)


def array_length(data: bytes) -> int:
    """The number of elements of a one-dimensional binary array."""
    if struct.unpack_from(">i", data)[0] == 0:
        return 0
    return int(struct.unpack_from(">i", data, 12)[0])


class _BinaryArrayDumper(Dumper):
    format = Format.BINARY
    oid = 0  # unspecified: the server takes the statement's cast

    def dump(self, obj: Any) -> Buffer:
        return bytes(obj)


class _BytesLoader(Loader):
    format = Format.BINARY

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


def array_cursor(connection: psycopg.Connection[Any]) -> psycopg.Cursor[Any]:
    """A cursor on ``connection`` binding parameters on the server (Django's are
    client-side, which cannot send binary), sending ``BinaryArray`` parameters
    and giving the arrays of RAW_ARRAY_OIDS in binary results as bytes."""
    cursor = psycopg.Cursor(connection)
    cursor.adapters.register_dumper(BinaryArray, _BinaryArrayDumper)
    for oid in RAW_ARRAY_OIDS:
        cursor.adapters.register_loader(oid, _BytesLoader)
    return cursor
