"""/docs without the internet: Swagger UI from the swagger-ui-bundle package, served by us."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from api.security import policy_with_inline_scripts

ASSETS = "/docs-assets"


# FastAPI's default loads them from a CDN: create the app with docs_url=None, redoc_url=None.
def serve_offline_docs(app: FastAPI) -> None:
    """/docs and its assets from the installed package (no OAuth2 redirect page: the API's one
    scheme is a bearer token, which Swagger UI's Authorize takes without a redirect)."""
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )
        # Swagger UI starts from an inline script: allow that one by its hash, nothing else.
        page.headers["content-security-policy"] = policy_with_inline_scripts(
            bytes(page.body).decode()
        )
        return page
