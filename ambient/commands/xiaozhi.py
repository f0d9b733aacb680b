"""`ambient xiaozhi`: connect 小智 to the product — `endpoint` (xiaozhi.me MCP 接入点 the API
process dials) and `device` (the speakers that call the context provider)."""

from __future__ import annotations

import typer

from ambient.commands.xiaozhi_devices import device_app
from ambient.commands.xiaozhi_endpoints import endpoint_app

app = typer.Typer(help="小智 (xiaozhi): endpoints and devices.", no_args_is_help=True)
app.add_typer(endpoint_app, name="endpoint")
app.add_typer(device_app, name="device")
