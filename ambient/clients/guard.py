"""The destination guard: one decision for every outbound request a user can aim.

Web pages, metric URLs, webhooks, WeCom/DingTalk URLs and HTTP(S) Apprise URLs all pass
here, so a user cannot make the worker call the cloud metadata service, the database on
the private network or the worker's own loopback ports.

ValueError
 └── Refusal
      └── RefusedDestinationError   the URL or an address it resolves to is refused (says why)
OSError
 └── DestinationLookupError    the host name does not resolve (may pass: DNS outage)
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import unquote, urlsplit, urlunsplit

import httpcore
import httpx

from ambient.refusals import N_, Refusal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud metadata endpoints (AWS/GCP/Azure/Tencent link-local, Tencent, Alibaba, AWS IPv6).
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.0.23", "100.100.100.200", "fd00:ec2::254")
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: last 32 bits are v4
IPV4_COMPAT = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible form
# Names that always mean this machine (RFC 6761), refused before any DNS lookup.
LOCAL_NAMES = re.compile(r"^(localhost|localhost\.localdomain|.*\.localhost)$")
# Characters browsers and URL parsers disagree about; a host with them is a trick, not a host.
AMBIGUOUS = re.compile(r"[\\\s\x00-\x1f\x7f]")


# How long a name's addresses are reused, and how many names are kept.
RESOLVE_TTL = 60.0
RESOLVE_CACHE_SIZE = 10_000


# The guard's refusals, worded once: a fetch's error (a redirect refused) is stored as their
# English and read back to be said in a page's language (ambient/clients/web_errors.py).
NON_PUBLIC = N_(
    "refused destination %(host)s: %(address)s %(why)s (a non-public address); allow it with "
    "AMBIENT_FETCH_ALLOW_CIDRS (e.g. 10.0.0.0/8) if intended"
)
RESOLVES_NON_PUBLIC = N_(
    "refused destination %(host)s: it resolves to %(address)s, which %(why)s (a non-public "
    "address); allow it with AMBIENT_FETCH_ALLOW_CIDRS (e.g. 10.0.0.0/8) if intended"
)
# A cloud metadata address: a wider network allowed never opens it, only the address itself.
METADATA_REFUSED = N_(
    "refused destination %(host)s: %(address)s %(why)s (it hands out this machine's cloud "
    "credentials); allow exactly it with AMBIENT_FETCH_ALLOW_CIDRS=%(allow)s only if intended"
)
RESOLVES_METADATA = N_(
    "refused destination %(host)s: it resolves to %(address)s, which %(why)s (it hands out "
    "this machine's cloud credentials); allow exactly it with AMBIENT_FETCH_ALLOW_CIDRS=%(allow)s "
    "only if intended"
)
CONTROLS = N_("refused URL: it contains spaces, backslashes or controls")
NOT_A_URL = N_("refused URL: %(error)s")
SCHEME = N_("refused URL: only http and https are allowed (got %(scheme)s)")
USERINFO = N_(
    "refused URL: user:password@ in the address is not accepted "
    "(it hides the real host); put credentials in a secret"
)
NOT_A_NAME = N_("refused URL: its host is not a name the internet can look up")
NO_HOST = N_("refused URL: it has no host")
HOST_ESCAPED = N_("refused URL: its host has escaped or control characters")
PERCENT_ESCAPED = N_(
    "refused URL: its host %(host)s is written with %%-escapes; write the name itself"
)
TWO_NAMES = N_(
    "refused URL: its host %(host)s is read as different names by different clients "
    "(IDNA 2003 and 2008); write it as the ASCII name meant (xn--...)"
)
# Read back in this order: the first that fits the text (a general form after the one it holds).
REFUSALS = (
    RESOLVES_METADATA,
    METADATA_REFUSED,
    RESOLVES_NON_PUBLIC,
    NON_PUBLIC,
    CONTROLS,
    SCHEME,
    USERINFO,
    NOT_A_NAME,
    NO_HOST,
    HOST_ESCAPED,
    PERCENT_ESCAPED,
    TWO_NAMES,
    NOT_A_URL,
)
# A host name that does not resolve (``reason``: the resolver's words).
CANNOT_RESOLVE = N_("cannot resolve %(host)s: %(reason)s")


class RefusedDestinationError(Refusal):
    """The destination is not one the worker may call; the message says why and how to allow."""


class DestinationLookupError(OSError):
    """The destination's host name could not be resolved."""


@dataclass(frozen=True)
class PinnedRequest:
    """Where to send a checked request: plain HTTP goes to the checked address itself;
    ``address`` is the one checked, for a client that connects by itself (HTTPS too)."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    address: str | None = None


class DestinationGuard:
    """Refuses non-public destinations unless their address is in an allow-listed network."""

    def __init__(self, allow_cidrs: Sequence[str] = ()) -> None:
        self._allowed: list[Network] = [
            ipaddress.ip_network(cidr.strip(), strict=False) for cidr in allow_cidrs if cidr.strip()
        ]
        # Metadata addresses the allow-list names one by one (169.254.169.254/32).
        self._named = frozenset(
            network.network_address for network in self._allowed if network.num_addresses == 1
        )
        self._resolved: dict[tuple[str, int], tuple[float, tuple[str, ...]]] = {}

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` is refused, or None when the worker may connect to it."""
        # The metadata service hands out the instance's credentials: a network allowed for an
        # intranet (169.254.0.0/16, 100.64.0.0/10 holds 100.100.100.200) does not open it,
        # only the address itself does.
        if address in METADATA:
            return None if address in self._named else f"{address} is a cloud metadata address"
        if not _holds_metadata(address) and any(address in net for net in self._allowed):
            return None
        if isinstance(address, ipaddress.IPv6Address):
            if (embedded := _embedded_ipv4(address)) is not None:
                form, v4 = embedded
                if (reason := self.refusal(v4)) is not None:
                    return f"{address} is the {form} form of {v4}: {reason}"
                if form == "Teredo":
                    return f"{address} is a Teredo tunnel address"
                return None  # mapped, NAT64 and 6to4 traffic goes to a public IPv4 address
        cgnat = isinstance(address, ipaddress.IPv4Address) and address in CGNAT
        # fec0::/10 is neither private nor reserved to ipaddress, yet routed inside networks.
        site_local = isinstance(address, ipaddress.IPv6Address) and address.is_site_local
        kinds = (
            (address.is_loopback, "a loopback address"),
            (address.is_unspecified, "the unspecified address"),
            (address.is_link_local, "a link-local address"),
            (address.is_multicast, "a multicast address"),
            (cgnat, "a carrier-grade NAT (100.64.0.0/10) address"),
            (address.is_private, "a private address"),
            (site_local, "a site-local (fec0::/10) address"),
            (address.is_reserved or not address.is_global, "a reserved (non-global) address"),
        )
        return next((f"{address} is {kind}" for refused, kind in kinds if refused), None)

    def check_url_static(self, url: str) -> str:
        """The URL's host, refused by its form alone (no DNS): scheme, userinfo, literal IPs."""
        host = url_host(url)
        self._refuse_literal(host)
        _one_name(url, host)
        return host

    async def check_url(self, url: str) -> list[str]:
        """Resolve the URL's host and refuse it if any address is refused; the addresses."""
        return await self._checked(self.check_url_static(url), url_port(url))

    async def check_host(self, host: str, port: int) -> list[str]:
        """``host``'s addresses, refused as ``check_url`` refuses them: for a connection made
        by name (an agent's MCP server), to go to an address checked."""
        self._refuse_literal(host)
        return await self._checked(host, port)

    def check_host_blocking(self, host: str, port: int) -> list[str]:
        """``host``'s addresses, refused as ``check_url`` refuses them, looked up in this thread
        (not the cache): for a client that connects by itself, in a thread of its own, to
        hosts a service's answer names (an Apprise service's discovery)."""
        self._refuse_literal(host)
        addresses = _lookup(host, port)
        self._refuse(host, map(ipaddress.ip_address, addresses), RESOLVES_NON_PUBLIC)
        return addresses

    async def _checked(self, host: str, port: int) -> list[str]:
        addresses = await self.resolve(host, port)
        self._refuse(host, map(ipaddress.ip_address, addresses), RESOLVES_NON_PUBLIC)
        return addresses

    def _refuse_literal(self, host: str) -> None:
        """Refuse the addresses ``host`` names without DNS. A ``localhost`` name passes when
        either loopback it may mean is allowed: which one it resolves to is not known without
        DNS, and the lookup's every address is checked before a connection."""
        addresses = _literal_addresses(host)
        if LOCAL_NAMES.match(host.lower()) and any(self.refusal(a) is None for a in addresses):
            return
        self._refuse(host, addresses)

    def _refuse(self, host: str, addresses: Iterable[IPAddress], said: str = NON_PUBLIC) -> None:
        """RefusedDestinationError naming the first of ``addresses`` that is refused."""
        for address in addresses:
            if (reason := self.refusal(address)) is not None:
                why = reason.removeprefix(f"{address} ")  # every reason names the address first
                if (metadata := _metadata_of(address)) is None:
                    raise RefusedDestinationError(said, host=host, address=str(address), why=why)
                raise RefusedDestinationError(
                    RESOLVES_METADATA if said == RESOLVES_NON_PUBLIC else METADATA_REFUSED,
                    host=host,
                    address=str(address),
                    why=why,
                    allow=str(ipaddress.ip_network(metadata)),
                )

    async def pin(self, url: str) -> PinnedRequest:
        """Check ``url``; plain HTTP is pinned to the checked address with the original Host."""
        # Resolving again at connect time would let a name flip to a refused address between
        # the check and the connection (DNS rebinding). HTTPS keeps the name: TLS verifies the
        # certificate for it, and a rebound internal server cannot present one.
        addresses = await self.check_url(url)
        parts = urlsplit(url.strip())
        address = addresses[0]
        if parts.scheme.lower() == "https":
            return PinnedRequest(url, address=address)
        literal = f"[{address}]" if ":" in address else address
        port = f":{parts.port}" if parts.port else ""
        pinned = urlunsplit(parts._replace(netloc=literal + port))
        # The Host as written; an internationalised name in ASCII, as a connection sends it.
        netloc = parts.netloc
        if not netloc.isascii():
            name = url_host(url)
            netloc = (f"[{name}]" if ":" in name else name) + port
        return PinnedRequest(pinned, {"Host": netloc}, address)

    async def resolve(self, host: str, port: int) -> list[str]:
        """Every address ``host`` resolves to (getaddrinfo in a thread, like the connection)."""
        # A name's answer is kept for RESOLVE_TTL: watches ask for the same hosts every minute,
        # and the answer is pinned, so a name that flips meanwhile is not followed.
        with suppress(ValueError):
            if str(ipaddress.ip_address(host)) == host:
                return [host]
        now = time.monotonic()
        if (cached := self._resolved.get((host, port))) is not None and cached[0] > now:
            return list(cached[1])
        addresses = await asyncio.to_thread(_lookup, host, port)
        if len(self._resolved) >= RESOLVE_CACHE_SIZE:
            self._resolved.clear()
        self._resolved[(host, port)] = (now + RESOLVE_TTL, tuple(addresses))
        return addresses


class GuardedConnections:
    """An HTTP client's connections (httpcore's network backend, of httpx's or httpx2's),
    each to an address the destination guard checked for the host just before, not to one a
    second lookup finds (DNS rebinding). The request stays as written: its URL and Host name
    the host (a same-origin redirect built from the Host is followed), and TLS verifies the
    certificate for it. ``backend``: the library's own; ``failed``: its ConnectError, which a
    refusal is raised as (a connection that failed: shown unavailable, tried again later)."""

    def __init__(self, guard: DestinationGuard, backend: Any, failed: type[Exception]) -> None:
        self.guard, self.backend, self.failed = guard, backend, failed

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> Any:
        try:
            addresses = await self.guard.check_host(host, port)
        except (RefusedDestinationError, DestinationLookupError) as exc:
            raise self.failed(str(exc)) from None
        return await self.backend.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self.backend.sleep(seconds)


def guarded_client(
    guard: DestinationGuard, *, verify: ssl.SSLContext | bool = True, timeout: float = 30
) -> httpx.AsyncClient:
    """An httpx client whose every connection goes through ``guard`` (GuardedConnections)."""
    connections = httpx.AsyncHTTPTransport(verify=verify, trust_env=False)
    guarded = GuardedConnections(guard, httpcore.AnyIOBackend(), httpcore.ConnectError)
    connections._pool._network_backend = cast(httpcore.AsyncNetworkBackend, guarded)
    return httpx.AsyncClient(timeout=timeout, trust_env=False, transport=connections)


def url_port(url: str) -> int:
    """The port an http(s) URL connects to: its own, else its scheme's."""
    parts = urlsplit(url.strip())
    return parts.port or (443 if parts.scheme.lower() == "https" else 80)


def url_host(url: str) -> str:
    """The host of an http(s) URL, or RefusedDestinationError for any other form."""
    if AMBIGUOUS.search(url.strip()):
        raise RefusedDestinationError(CONTROLS)
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise RefusedDestinationError(NOT_A_URL, error=str(exc)) from None
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme or "none"
        raise RefusedDestinationError(SCHEME, scheme=scheme)
    if "@" in parts.netloc:
        raise RefusedDestinationError(USERINFO)
    host = unquote(parts.hostname or "")
    if not host.isascii():
        # As the connection will name it (getaddrinfo encodes with IDNA, NFKC first):
        # "127。0。0。1", "ｌｏｃａｌｈｏｓｔ", "ⓛⓞⓒⓐⓛⓗⓞⓢⓣ" are loopback, not names to look up.
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise RefusedDestinationError(NOT_A_NAME) from None
    host = host.rstrip(".")
    if not host:
        raise RefusedDestinationError(NO_HOST)
    if AMBIGUOUS.search(host) or "/" in host:
        raise RefusedDestinationError(HOST_ESCAPED)
    return host


def _one_name(url: str, host: str) -> None:
    """Refuse an internationalised host the product's clients would name differently: the
    name resolved and checked here is IDNA 2003's (``host``, as getaddrinfo and ssl encode it),
    httpx connects to IDNA 2008's ("faß.de": fass.de checked, xn--fa-hia.de connected to) and
    refuses what that does not take (full-width letters: saved, then failing every delivery)."""
    written = urlsplit(url.strip()).hostname or ""
    if "%" in written and ":" not in written:  # an IPv6 literal's "%25" is its zone
        # httpx connects to the escapes as written ("b%c3%bccher.de"), a name no DNS has.
        raise RefusedDestinationError(PERCENT_ESCAPED, host=repr(written))
    if written.isascii():
        return
    try:
        named = httpx.URL(url.strip()).raw_host.decode("ascii").rstrip(".")
    except (httpx.InvalidURL, UnicodeError):
        named = None
    if named != host:
        raise RefusedDestinationError(TWO_NAMES, host=repr(written))


def _lookup(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, each once, in order (blocking)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:
        raise DestinationLookupError(CANNOT_RESOLVE % {"host": host, "reason": exc}) from exc
    # Without an IPv6 scope (%eth0): the address decides, not the NIC.
    addresses = list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))
    if not addresses:
        raise DestinationLookupError(CANNOT_RESOLVE % {"host": host, "reason": "no addresses"})
    return addresses


def _literal_addresses(host: str) -> list[IPAddress]:
    """The addresses a host names without DNS: IP literals in every form getaddrinfo takes."""
    if LOCAL_NAMES.match(host.lower()):
        return [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    with suppress(ValueError):
        return [ipaddress.ip_address(host.split("%", 1)[0])]
    if re.fullmatch(r"[0-9a-fA-FxX.]+", host):
        # inet_aton's legacy forms (2130706433, 0x7f.1, 0177.0.0.1, 127.1) reach real addresses.
        with suppress(OSError):
            return [ipaddress.IPv4Address(socket.inet_aton(host))]
    return []


def _metadata_of(address: IPAddress) -> IPAddress | None:
    """The metadata address ``address`` is, or an IPv6 form of; None: neither."""
    if address in METADATA:
        return address
    if isinstance(address, ipaddress.IPv6Address) and (embedded := _embedded_ipv4(address)):
        return embedded[1] if embedded[1] in METADATA else None
    return None


def _holds_metadata(address: IPAddress) -> bool:
    """Whether ``address`` is an IPv6 form of a metadata address (decided by that address)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return False
    embedded = _embedded_ipv4(address)
    return embedded is not None and embedded[1] in METADATA


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    if address.teredo is not None:
        server, client = address.teredo
        # Both ends are reachable through the tunnel: name the one that is refused, if any.
        return "Teredo", client if not client.is_global else server
    if address in NAT64:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in IPV4_COMPAT and int(address) > 1:
        return "IPv4-compatible", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
