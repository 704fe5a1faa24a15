"""Build an admin change form's POST from the page the admin rendered."""

from typing import Any

from django.http import HttpResponse


def posted(page: HttpResponse, **changes: Any) -> dict[str, Any]:
    """The form as the admin rendered it (what a browser would send back), with
    ``changes``, plus each inline's management form."""
    form = page.context["adminform"].form
    data: dict[str, Any] = {}
    for name in form.fields:
        value = form[name].value()
        if value is True:
            data[name] = "on"
        elif value is not None and value is not False:
            data[name] = value
    data.update(changes)
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for key, value in management.initial.items():
            data[f"{management.prefix}-{key}"] = value
    return {key: value for key, value in data.items() if value is not None}
