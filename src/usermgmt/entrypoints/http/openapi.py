"""/openapi.json: what FastAPI derives from the routes, plus the named schemas that routes only reference (the
problem document, the login bodies)."""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

REF_TEMPLATE: Final = "#/components/schemas/{model}"


def component_ref(model: type[BaseModel]) -> dict[str, str]:
    """A JSON Schema reference to ``model`` as a named component (``install_openapi`` must be given the model)."""
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def install_openapi(
    app: FastAPI, *, requests: tuple[type[BaseModel], ...] = (), responses: tuple[type[BaseModel], ...] = ()
) -> None:
    """Make ``app`` publish ``requests`` (validation schemas) and ``responses`` (serialization schemas) among its
    components, and the models they nest, next to what FastAPI finds in the routes."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            models = [(m, "validation") for m in requests] + [(m, "serialization") for m in responses]
            _, definitions = models_json_schema(models, ref_template=REF_TEMPLATE)  # type: ignore[arg-type]
            components = schema.setdefault("components", {})
            components["schemas"] = dict(sorted({**components.get("schemas", {}), **definitions["$defs"]}.items()))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
