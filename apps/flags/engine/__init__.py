"""The flag evaluation engine: compile specs once, evaluate with no I/O."""

from apps.flags.engine.compiler import RuleError, compile_flag, compile_snapshot
from apps.flags.engine.model import (
    CompiledFlag,
    ErrorCode,
    Evaluation,
    Reason,
    Snapshot,
)

__all__ = [
    "CompiledFlag",
    "ErrorCode",
    "Evaluation",
    "Reason",
    "RuleError",
    "Snapshot",
    "compile_flag",
    "compile_snapshot",
]
