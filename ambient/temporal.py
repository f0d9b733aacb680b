"""The Temporal client as every entry point builds it, and the custom search attributes."""

from __future__ import annotations

from temporalio.client import Client, TLSConfig
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from ambient.settings import Settings

KIND = SearchAttributeKey.for_keyword("AmbientKind")
USER = SearchAttributeKey.for_keyword("AmbientUser")
CLUSTER = SearchAttributeKey.for_keyword("AmbientCluster")
STATE = SearchAttributeKey.for_keyword("AmbientState")
SEARCH_ATTRIBUTES = (KIND, USER, CLUSTER, STATE)


def tls_config(settings: Settings) -> TLSConfig | bool:
    if not (settings.temporal_tls or settings.temporal_tls_cert or settings.temporal_api_key):
        return False
    return TLSConfig(
        server_root_ca_cert=settings.temporal_tls_ca.read_bytes()
        if settings.temporal_tls_ca
        else None,
        client_cert=settings.temporal_tls_cert.read_bytes() if settings.temporal_tls_cert else None,
        client_private_key=settings.temporal_tls_key.read_bytes()
        if settings.temporal_tls_key
        else None,
    )


async def connect(
    settings: Settings, *, runtime: Runtime | None = None, lazy: bool = False
) -> Client:
    """Connect to the Temporal server of ``settings`` with the pydantic data converter."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        tls=tls_config(settings),
        api_key=api_key,
        data_converter=pydantic_data_converter,
        runtime=runtime,
        lazy=lazy,
    )
