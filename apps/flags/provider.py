"""An in-process OpenFeature provider over this process's snapshot.

``openfeature.api.set_provider(OpsConsoleProvider())`` lets code use the standard
OpenFeature client; answers are the same as ``apps.flags.resolve``.
"""

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode as OFErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails
from openfeature.provider import AbstractProvider, Metadata

from apps.flags import ErrorCode, Evaluation, resolve

T = TypeVar("T")


def context_of(evaluation_context: EvaluationContext | None) -> dict[str, Any]:
    """Our flat context from OpenFeature's: attributes plus ``targetingKey``."""
    if evaluation_context is None:
        return {}
    ctx = dict(evaluation_context.attributes)
    if evaluation_context.targeting_key is not None:
        ctx["targetingKey"] = evaluation_context.targeting_key
    return ctx


def _details(result: Evaluation, value: T) -> FlagResolutionDetails[T]:
    return FlagResolutionDetails(
        value=value,
        error_code=OFErrorCode(result.error_code.value) if result.error_code else None,
        error_message=result.error_message or None,
        reason=result.reason.value,
        variant=result.variant,
    )


class OpsConsoleProvider(AbstractProvider):
    """Resolves flags from the compiled snapshot: no I/O per evaluation."""

    def get_metadata(self) -> Metadata:
        return Metadata(name="opsconsole")

    def _resolve(
        self, key: str, default: T, evaluation_context: EvaluationContext | None
    ) -> FlagResolutionDetails[T]:
        result = resolve(key, default, context_of(evaluation_context))
        return _details(result, result.value)

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context)

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context)

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        result = resolve(flag_key, default_value, context_of(evaluation_context))
        value = result.value
        if isinstance(value, float):
            if not value.is_integer():
                mismatch = Evaluation(
                    flag_key,
                    default_value,
                    None,
                    result.reason.ERROR,
                    ErrorCode.TYPE_MISMATCH,
                    f"{value} is not an integer",
                )
                return _details(mismatch, default_value)
            value = int(value)
        return _details(result, value)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        result = resolve(flag_key, default_value, context_of(evaluation_context))
        return _details(result, float(result.value))

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[Any] | Mapping[str, Any],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[Any] | Mapping[str, Any]]:
        return self._resolve(flag_key, default_value, evaluation_context)
