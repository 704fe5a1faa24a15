"""A flag's rules as one straight-line Python function: the evaluation hot path.

A loop over the rules and their conditions costs more than the conditions
themselves (~0.2 µs of the ~0.65 µs the benchmark flag took), so each *shape* of
rule list (how many conditions each rule has, whether it has a rollout gate) is
written out once as source, compiled, and cached; each flag gets that code as a
function whose globals are its own predicates, gates and answers. The source holds
generated names only (``c0_1``, ``gate2``, ``hit0``), never anything from a flag's
spec, so no spec can inject code. For the benchmark flag the function reads::

    def run(ctx, depth=0):
        missing = False
        if c0_0(ctx) and c0_1(ctx):
            return hit0
        if c1_0(ctx):
            return hit1
        served = gate2(ctx)
        if served is not None:
            if served is not MISSING:
                return served
            missing = True
        return key_missing if missing else default
"""

from functools import lru_cache
from types import CodeType, FunctionType
from typing import cast

from apps.flags.engine.model import MISSING, CompiledRule, Evaluation, Runner

# (number of conditions, has a gate) per rule.
Shape = tuple[tuple[int, bool], ...]


def rules_runner(
    rules: tuple[CompiledRule, ...], *, default: Evaluation, key_missing: Evaluation
) -> Runner:
    """The first rule whose conditions hold and whose gate (if any) lets the context
    in answers; else ``key_missing`` when a gate found no stickiness value, else
    ``default``."""
    namespace: dict[str, object] = {
        "MISSING": MISSING,
        "default": default,
        "key_missing": key_missing,
    }
    for i, rule in enumerate(rules):
        namespace[f"hit{i}"] = rule.hit
        if rule.gate is not None:
            namespace[f"gate{i}"] = rule.gate
        for j, condition in enumerate(rule.conditions):
            namespace[f"c{i}_{j}"] = condition
    shape = tuple((len(rule.conditions), rule.gate is not None) for rule in rules)
    return cast(Runner, FunctionType(_code(shape), namespace, "run", (0,)))


@lru_cache(maxsize=1024)
def _code(shape: Shape) -> CodeType:
    lines = ["def run(ctx, depth=0):", "    missing = False"]
    for i, (conditions, gated) in enumerate(shape):
        indent = "    "
        if conditions:
            tests = " and ".join(f"c{i}_{j}(ctx)" for j in range(conditions))
            lines.append(f"    if {tests}:")
            indent = "        "
        if gated:
            lines += [
                f"{indent}served = gate{i}(ctx)",
                f"{indent}if served is not None:",
                f"{indent}    if served is not MISSING:",
                f"{indent}        return served",
                f"{indent}    missing = True",
            ]
        else:
            lines.append(f"{indent}return hit{i}")
    lines.append("    return key_missing if missing else default")
    module = compile("\n".join(lines), "<flag rules>", "exec")
    return next(c for c in module.co_consts if isinstance(c, CodeType))
