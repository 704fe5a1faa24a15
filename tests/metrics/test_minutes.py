"""Bucket codes in numpy: the same codes as ``sketch.bucket_code`` and as the SQL
minute statement computes them."""

import numpy as np
import pytest
from django.db import connection

from apps.metrics.sketch import (
    CODE_OFFSET,
    GAMMA,
    MIN_INDEXABLE,
    bucket_code,
    bucket_code_sql,
    bucket_codes,
)

# Next to a power of gamma, where numpy's own log (SIMD, an ulp off libm's now
# and then) put each of these in the neighbouring bucket on the machine these
# tests were written on (numpy 2.4, AVX-512).
NUMPY_LOG_MISSES = [
    1.2120113842591075e27,
    1.5176635947293917e41,
    3.267817332442859e110,
    1.3424901460544123e58,
    3.0333575644899535e44,
    4.591164123638276e110,
    4.603309261724829e93,
    4.123648909850362e97,
    4.091096067386444e148,
]


def edge_values() -> np.ndarray:
    """Powers of gamma and the floats either side, tiny values around
    MIN_INDEXABLE, zeros, extremes, small integers; each also negated."""
    powers = GAMMA ** np.arange(-1036.0, 35_488.0)  # 1e-9 to the largest float
    tiny = np.array([MIN_INDEXABLE, 5e-324, 1e-300, 1e-10, 0.0, 1.0, 1.5e308])
    near = np.concatenate([powers, tiny])
    values = np.concatenate(
        [
            near,
            np.nextafter(near, np.inf),
            np.nextafter(near, 0),
            np.arange(1.0, 1001.0),
            NUMPY_LOG_MISSES,
            [np.finfo(np.float64).max],
        ]
    )
    return np.concatenate([values, -values])


def test_bucket_codes__edge_values__equal_bucket_code():
    values = edge_values()

    codes = bucket_codes(values)

    want = [bucket_code(value) for value in values.tolist()]
    assert codes.tolist() == want
    # The edges are there: zero, both signs, and the ends of the index range.
    assert {0, CODE_OFFSET, -CODE_OFFSET} <= set(want)
    assert min(want) < -(CODE_OFFSET + 35_000)
    assert max(want) > CODE_OFFSET + 35_000


def test_bucket_codes__a_million_lognormal_values__equal_bucket_code():
    values = np.random.default_rng(7).lognormal(3, 4, 1_000_000)
    values[::3] *= -1

    assert bucket_codes(values).tolist() == [bucket_code(v) for v in values.tolist()]


# PostgreSQL's ln is the C library's log, as math.log is.


@pytest.mark.django_db
def test_bucket_codes__edge_values__equal_the_sql_codes():
    values = edge_values()[::7].tolist() + NUMPY_LOG_MISSES
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {bucket_code_sql('v')} FROM unnest(%s::float8[]) WITH ORDINALITY AS t(v, i) "  # noqa: S608 - a constant
            "ORDER BY i",
            [values],
        )
        sql = [row[0] for row in cursor.fetchall()]

    assert bucket_codes(np.array(values)).tolist() == sql
