"""One signed call's answer as the API gave it: the SDK's request (``_call``), its status and
body read here, every way it fails an SDK exception with a code; and whether one sent was
left unanswered."""

from __future__ import annotations

import json
from typing import Any

from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException


def answer(client: Any, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """The `Response` object of one call; every way it fails is an SDK exception with a code.

    The SDK's ``call_json`` raises an API error only when the answer says exactly
    `application/json`: with a charset it returns the error as if it were the answer (NOTES);
    an error without a RequestId or a Message is a KeyError there, its code lost. So the
    signed request is the SDK's (``_call``) and the status and body are read here. An API
    error sent with an HTTP error status is that error; any other answer with one is a
    ServerNetworkError naming the status, and an answer that is not the API's JSON (a
    proxy's page) is one too. The SDK sends with stream=True: the body is read here, and
    a connection that breaks off in it is the SDK's ClientNetworkError (an answer lost).
    """
    import requests  # the SDK's own transport, loaded with it

    try:
        sent = client._call(action, present(params), None, None)
        try:
            body = sent.content
        except requests.RequestException as exc:
            raise TencentCloudSDKException("ClientNetworkError", repr(exc)) from exc
        if sent.status_code != 200:  # the SDK's `_check_status`, said with the status
            raise _api_error(body) or _not_the_api(sent.status_code, body)
        data = json.loads(body)
    except (ValueError, KeyError, TypeError) as exc:
        raise TencentCloudSDKException(
            "ServerNetworkError", f"the answer is not a Tencent Cloud API response ({exc!r})"
        ) from None
    response = data.get("Response") if isinstance(data, dict) else None
    if not isinstance(response, dict):
        raise TencentCloudSDKException(
            "ServerNetworkError", "the answer is not a Tencent Cloud API response (no Response)"
        )
    if (error := _api_error(data)) is not None:
        raise error
    response.pop("RequestId", None)
    return response


def present(value: Any) -> Any:
    """``value`` without its None fields, at any depth: sent as they are (the SDK leaves None
    out of its typed models only), an API refuses a null where the field's default holds."""
    if isinstance(value, dict):
        return {k: present(v) for k, v in value.items() if v is not None}
    return [present(v) for v in value] if isinstance(value, list) else value


def _not_the_api(status: int, body: bytes) -> TencentCloudSDKException:
    """An HTTP error status without an API error: what answered (a gateway, a proxy) and what
    it said, which may be nothing (an empty 504 was said as "ServerNetworkError: ")."""
    page = " ".join(body.decode(errors="replace").split())
    error = TencentCloudSDKException(
        "ServerNetworkError",
        f"HTTP {status} and no Tencent Cloud API answer (if it lasts, check the way to the "
        f"API: a proxy, AMBIENT_TENCENTCLOUD_ENDPOINT): {page or 'empty body'}",
    )
    error.status = status
    return error


# A gateway's answer for the API that it passed the request on to and heard nothing back from.
GATEWAY_LOST = (502, 504)


def unanswered(exc: TencentCloudSDKException) -> bool:
    """True when the request was sent and its answer never came: a gateway's 502 or 504, or
    the SDK's ClientNetworkError over requests' read timeout or a connection dropped after
    it was made (a body broken off or timed out mid-read included). A connection refused, a
    name that does not resolve, TLS, a proxy's refusal or a request never signed was never
    sent."""
    import requests  # the SDK's own transport, loaded with it

    if getattr(exc, "status", None) in GATEWAY_LOST:
        return True
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, requests.ReadTimeout | requests.exceptions.ChunkedEncodingError):
        return True  # the body broken off (ChunkedEncodingError) was sent and answered in part
    not_made = (
        requests.ConnectTimeout,
        requests.exceptions.SSLError,
        requests.exceptions.ProxyError,
    )
    if not isinstance(cause, requests.ConnectionError) or isinstance(cause, not_made):
        return False
    # urllib3's ProtocolError: the connection made, then reset or closed without an answer
    # ("Connection aborted"); a NewConnectionError (refused, DNS) is the connection not made.
    # A read timeout in the body (stream=True) is a ConnectionError over ReadTimeoutError.
    from urllib3.exceptions import ProtocolError, ReadTimeoutError

    return any(isinstance(arg, ProtocolError | ReadTimeoutError) for arg in cause.args)


def _api_error(body: Any) -> TencentCloudSDKException | None:
    """The API error a body holds (`{"Response": {"Error": {"Code", "Message"}}}`), if any."""
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    response = body.get("Response") if isinstance(body, dict) else None
    error = response.get("Error") if isinstance(response, dict) else None
    if not isinstance(error, dict):
        return None
    return TencentCloudSDKException(
        str(error.get("Code") or "ServerNetworkError"),
        str(error.get("Message") or ""),
        response.get("RequestId"),  # type: ignore[union-attr]
    )
