"""Unleash's client specification, run through our engine by a translator.

The files stay in ../shared/peer-suites/ (its README: the project does not copy
them). Every case either passes or is skipped with a reason from
``tests.flags.unleash.SKIP_REASONS``.
"""

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from apps.flags.engine import ErrorCode, Snapshot, compile_snapshot
from tests.flags.unleash import (
    Unmappable,
    translate_context,
    translate_feature,
    translate_segment,
)

SPEC = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "peer-suites"
    / "unleash-client-specification"
)


def _files() -> list[str]:
    if not SPEC.is_dir():
        return []
    return json.loads((SPEC / "index.json").read_text())


@cache
def _load(name: str) -> tuple[dict[str, Any], Snapshot | None, dict[str, str]]:
    suite = json.loads((SPEC / name).read_text())
    state = suite["state"]
    if "features" not in state:
        return suite, None, {}
    skipped: dict[str, str] = {}
    specs = {}
    for feature in state["features"]:
        try:
            specs[feature["name"]] = translate_feature(feature)
        except Unmappable as exc:
            skipped[feature["name"]] = exc.reason
    for key, spec in list(specs.items()):
        if any(specs.get(r["flag"], {}).get("requires") for r in spec["requires"]):
            skipped[key] = "transitive_dependency"
            del specs[key]
    _skip_dependents(specs, skipped)
    segments = []
    for segment in state.get("segments") or []:
        try:
            segments.append(translate_segment(segment))
        except Unmappable:
            continue
    return suite, compile_snapshot(specs.values(), segments, version="1"), skipped


def _skip_dependents(specs: dict[str, Any], skipped: dict[str, str]) -> None:
    changed = True
    while changed:
        changed = False
        for key, spec in list(specs.items()):
            for req in spec["requires"]:
                if req["flag"] in skipped:
                    skipped[key] = skipped[req["flag"]]
                    del specs[key]
                    changed = True
                    break


def _cases(kind: str) -> list[Any]:
    params = []
    for name in _files():
        suite = json.loads((SPEC / name).read_text())
        for i in range(len(suite.get(kind) or [])):
            params.append(pytest.param(name, i, id=f"{name[:2]}-{i}"))
    return params


def _prepare(
    name: str, kind: str, index: int
) -> tuple[Snapshot, dict[str, Any], dict[str, Any]]:
    suite, snapshot, skipped = _load(name)
    case = suite[kind][index]
    if snapshot is None:
        pytest.skip(Unmappable("delta").args[0])
    if case["toggleName"] in skipped:
        pytest.skip(Unmappable(skipped[case["toggleName"]]).args[0])
    ctx = translate_context(case["context"])
    result = snapshot.evaluate(case["toggleName"], ctx)
    if result.error_code is ErrorCode.TARGETING_KEY_MISSING:
        pytest.skip(Unmappable("random_variant").args[0])
    return snapshot, case, ctx


@pytest.mark.skipif(not SPEC.is_dir(), reason="../shared/peer-suites is not beside")
@pytest.mark.parametrize(("name", "index"), _cases("tests"))
def test_unleash_spec_is_enabled__case__matches_expected(name, index):
    snapshot, case, ctx = _prepare(name, "tests", index)

    enabled = snapshot.is_on(case["toggleName"], ctx)

    assert enabled is case["expectedResult"], case["description"]


@pytest.mark.skipif(not SPEC.is_dir(), reason="../shared/peer-suites is not beside")
@pytest.mark.parametrize(("name", "index"), _cases("variantTests"))
def test_unleash_spec_variant__case__matches_expected(name, index):
    snapshot, case, ctx = _prepare(name, "variantTests", index)
    expected = case["expectedResult"]

    on = snapshot.is_on(case["toggleName"], ctx)
    result = snapshot.evaluate(case["toggleName"], ctx)
    named = on and result.variant not in ("on", "off")

    assert on is expected["feature_enabled"], case["description"]
    assert (result.variant if named else "disabled") == expected["name"]
    assert (result.value if named else None) == expected.get("payload")
