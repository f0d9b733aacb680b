"""The destination guard decides from addresses alone: nothing here opens a connection.

Resolution goes through getaddrinfo for names that resolve locally (literals, localhost);
no test resolves or connects to an address outside loopback.
"""

import ipaddress

import pytest

from ambient.clients.guard import DestinationGuard, RefusedDestinationError
from ambient.domain.users import Language
from api.i18n import Words
from api.routers.app_pages import failed_said

REFUSED = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.8",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.0.23",
    "100.100.100.200",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fec0::1",  # site-local (deprecated, still routed on old internal networks)
    "fd00:ec2::254",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.1.2.3",
    "::ffff:169.254.169.254",
    "::127.0.0.1",
    "2002:7f00:1::",
    "2002:a00:1::1",
    "2002:a9fe:a9fe::",
    "64:ff9b::127.0.0.1",
    "64:ff9b::10.0.0.1",
    "64:ff9b:1::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2001:db8::1",
]
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700::1111",
    "::ffff:8.8.8.8",
    "2002:808:808::",
    "64:ff9b::8.8.8.8",
]


@pytest.mark.parametrize("address", REFUSED)
def test_guard_refuses_every_non_public_address_form(address: str) -> None:
    parsed = ipaddress.ip_address(address)
    reason = DestinationGuard().refusal(parsed)
    assert reason is not None and reason.startswith(f"{parsed} is ")


@pytest.mark.parametrize("address", PUBLIC)
def test_guard_accepts_public_addresses_and_their_mapped_forms(address: str) -> None:
    assert DestinationGuard().refusal(ipaddress.ip_address(address)) is None


def test_guard_names_the_embedded_address_of_a_6to4_loopback() -> None:
    reason = DestinationGuard().refusal(ipaddress.ip_address("2002:7f00:1::"))
    assert reason == "2002:7f00:1:: is the 6to4 form of 127.0.0.1: 127.0.0.1 is a loopback address"


def test_allow_list_admits_only_its_networks() -> None:
    guard = DestinationGuard(["10.0.0.0/8", " 127.0.0.1/32 "])
    assert guard.refusal(ipaddress.ip_address("10.2.3.4")) is None
    assert guard.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert guard.refusal(ipaddress.ip_address("::ffff:10.2.3.4")) is None
    assert guard.refusal(ipaddress.ip_address("127.0.0.2")) == "127.0.0.2 is a loopback address"
    assert guard.refusal(ipaddress.ip_address("192.168.0.1")) is not None
    assert guard.refusal(ipaddress.ip_address("169.254.169.254")) is not None


@pytest.mark.parametrize(
    "allowed", ["169.254.0.0/16", "100.64.0.0/10", "0.0.0.0/0", "::/0", "::ffff:0:0/96"]
)
def test_a_network_allowed_for_an_intranet_does_not_open_the_metadata_service(
    allowed: str,
) -> None:
    """It hands out the instance's credentials: an operator who allowed 100.64.0.0/10 for an
    intranet opened 100.100.100.200, 169.254.0.0/16 opened 169.254.169.254."""
    guard = DestinationGuard([allowed])
    for address in ("169.254.169.254", "100.100.100.200", "::ffff:169.254.169.254"):
        assert "cloud metadata address" in (guard.refusal(ipaddress.ip_address(address)) or "")
    network = ipaddress.ip_network(allowed)
    others = ("169.254.1.1", "100.64.0.1", "::ffff:169.254.1.1", "fd00::1")
    for other in map(ipaddress.ip_address, others):
        if other.version == network.version and other in network:
            assert guard.refusal(other) is None
    # Named one by one, a metadata address is allowed, in its IPv6 forms too.
    named = DestinationGuard(["169.254.169.254/32"])
    assert named.refusal(ipaddress.ip_address("169.254.169.254")) is None
    assert named.refusal(ipaddress.ip_address("::ffff:169.254.169.254")) is None
    assert named.refusal(ipaddress.ip_address("169.254.0.23")) is not None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("gopher://example.com/", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("ftp://example.com/x", "only http and https"),
        ("example.com/hook", "only http and https"),
        ("http:///nohost", "no host"),
        ("http://user:pw@example.com/", "user:password@"),
        ("http://example.com@127.0.0.1/", "user:password@"),
        ("http://example.com\\@127.0.0.1/", "backslashes"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com:99999/", "refused URL"),
        ("http://127.0.0.1:9/hook", "127.0.0.1 is a loopback address"),
        ("http://127.0.0.1.:9/hook", "loopback"),
        ("http://localhost:9/", "loopback"),
        ("http://api.localhost/", "loopback"),
        ("http://2130706433/", "127.0.0.1 is a loopback"),
        ("http://0x7f.1/", "127.0.0.1 is a loopback"),
        ("http://0177.0.0.1/", "127.0.0.1 is a loopback"),
        ("http://127.1/", "127.0.0.1 is a loopback"),
        ("http://0x7f.0x0.0x0.0x1/", "127.0.0.1 is a loopback"),
        ("http://017700000001/", "127.0.0.1 is a loopback"),
        ("http://127.000.000.001/", "127.0.0.1 is a loopback"),
        ("http://0:80/", "unspecified"),
        ("http://169.254.169.254./", "cloud metadata"),
        ("http://[64:ff9b::a9fe:a9fe]/", "NAT64 form of 169.254.169.254"),
        ("http://[::127.0.0.1]/", "IPv4-compatible form of 127.0.0.1"),
        ("http://[::ffff:127.0.0.1%25lo]/", "IPv4-mapped form of 127.0.0.1"),
        ("http://[2001::7f00:1]/", "Teredo"),
        ("http://127.0.0.1%00.example.com/", "control characters"),
        ("http://[::1]:9/", "::1 is a loopback"),
        ("http://[::ffff:7f00:1]/", "IPv4-mapped form of 127.0.0.1"),
        ("http://[2002:7f00:1::]/", "6to4 form of 127.0.0.1"),
        ("http://[fe80::1%25eth0]/", "link-local"),
        ("https://100.64.0.1/", "carrier-grade NAT"),
        ("http://169.254.169.254/latest/meta-data", "cloud metadata"),
        ("HTTP://10.0.0.1/", "private"),
        ("http://exa%00mple.com/", "control characters"),
        ("http://127.0.0.1%2f@x/", "user:password@"),
        ("http://127%2e0%2e0%2e1/", "127.0.0.1 is a loopback"),
        # Unicode forms the connection's IDNA encoding turns into loopback: saved as a push
        # target, each passed the check and failed every delivery after.
        ("http://127。0。0。1:9/health", "127.0.0.1 is a loopback"),
        ("https://ｌｏｃａｌｈｏｓｔ/", "loopback"),
        ("http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ:9/x", "loopback"),
        ("http://１２７.０.０.１/", "127.0.0.1 is a loopback"),
        ("http://" + "ä" * 64 + ".com/", "not a name the internet can look up"),
        # Names IDNA 2003 (getaddrinfo, checked here) and 2008 (httpx, connected to) read apart:
        # fass.de was checked and xn--fa-hia.de sent to; full-width letters httpx refuses.
        ("https://faß.de/hook", "read as different names by different clients"),
        ("https://ｅｘａｍｐｌｅ.com/hook", "read as different names by different clients"),
        # Escaped, a name checked decoded (xn--bcher-kva.de) and connected to as written.
        ("http://b%C3%BCcher.de/x", "written with %-escapes"),
    ],
)
def test_static_check_refuses_by_form_and_names_the_reason(url: str, why: str) -> None:
    with pytest.raises(RefusedDestinationError, match="refused") as refused:
        DestinationGuard().check_url_static(url)
    assert why in str(refused.value)


def test_static_check_passes_public_urls_and_names_needing_dns() -> None:
    guard = DestinationGuard()
    for url in (
        "https://hooks.example.com/x?token=1",
        "http://8.8.8.8/",
        "https://[2606:4700::1111]/",
    ):
        guard.check_url_static(url)
    # An "@" after the host (in the query or fragment) is no userinfo: the host is the name
    # before it, which is what is looked up and connected to.
    assert guard.check_url_static("http://example.com#@127.0.0.1/") == "example.com"
    assert guard.check_url_static("http://example.com?@127.0.0.1/") == "example.com"
    # An internationalised name is checked, and looked up, as the connection names it.
    assert guard.check_url_static("https://例子.测试/a") == "xn--fsqu00a.xn--0zwm56d"


def test_refusal_says_how_to_allow() -> None:
    with pytest.raises(RefusedDestinationError, match="AMBIENT_FETCH_ALLOW_CIDRS"):
        DestinationGuard().check_url_static("http://10.0.0.1/")


class FixedAnswers(DestinationGuard):
    """A DNS answer chosen by the test: the classification is under test, not the resolver."""

    def __init__(self, answers: list[str], allow: list[str] | None = None) -> None:
        super().__init__(allow or [])
        self.answers = answers

    async def resolve(self, host: str, port: int) -> list[str]:
        return self.answers


async def test_a_name_with_any_refused_address_in_its_answer_is_refused() -> None:
    guard = FixedAnswers(["93.184.216.34", "10.0.0.5"])
    with pytest.raises(
        RefusedDestinationError, match=r"resolves to 10\.0\.0\.5, which is a private address"
    ):
        await guard.check_url("https://hooks.example.com/x")
    assert await FixedAnswers(["93.184.216.34"]).check_url("https://hooks.example.com/") == [
        "93.184.216.34"
    ]


async def test_a_pinned_internationalised_name_is_sent_as_its_ascii_host() -> None:
    """Plain HTTP to 例子.测试 is pinned to the checked address with the name as its Host: the
    name as written was a Unicode header, and every delivery failed encoding it."""
    pinned = await FixedAnswers(["93.184.216.34"]).pin("http://例子.测试:8080/hook")
    assert pinned.url == "http://93.184.216.34:8080/hook"
    assert pinned.headers == {"Host": "xn--fsqu00a.xn--0zwm56d:8080"}
    plain = await FixedAnswers(["93.184.216.34"]).pin("http://Hooks.Example.com/x")
    assert plain.headers == {"Host": "Hooks.Example.com"}  # as written


async def test_localhost_resolves_and_passes_only_when_loopback_is_allow_listed() -> None:
    with pytest.raises(RefusedDestinationError, match="loopback"):
        await DestinationGuard().check_url("http://localhost:9/")
    addresses = await DestinationGuard(["127.0.0.0/8", "::1/128"]).check_url("http://localhost:9/")
    assert "127.0.0.1" in addresses


async def test_localhost_is_taken_at_entry_when_a_loopback_it_may_mean_is_allow_listed() -> None:
    """The README's example allow-list (10.20.0.0/16,127.0.0.0/8) refused a task's
    http://localhost:9000/ at creation for ::1, an address this host's localhost may not even
    have; the lookup before each fetch checks the addresses it does have."""
    readme = ["10.20.0.0/16", "127.0.0.0/8"]
    for url in ("http://localhost:9000/", "http://api.localhost/", "http://LOCALHOST./"):
        DestinationGuard(readme).check_url_static(url)
        DestinationGuard(["::1/128"]).check_url_static(url)
    assert await FixedAnswers(["127.0.0.1"], readme).check_url("http://localhost:9000/") == [
        "127.0.0.1"
    ]
    # Where localhost is ::1 as well, the fetch is refused, naming it.
    with pytest.raises(
        RefusedDestinationError, match=r"resolves to ::1, which is a loopback address"
    ):
        await FixedAnswers(["127.0.0.1", "::1"], readme).check_url("http://localhost:9000/")
    # Without a loopback allowed, and in every other form, it stays refused at entry.
    with pytest.raises(RefusedDestinationError, match=r"localhost: 127\.0\.0\.1 is a loopback"):
        DestinationGuard(["10.20.0.0/16"]).check_url_static("http://localhost:9000/")
    for url in ("http://[::1]:9000/", "http://[::]:9000/", "http://0:9000/"):
        with pytest.raises(RefusedDestinationError):
            DestinationGuard(readme).check_url_static(url)


async def test_a_leading_zero_reads_octal_as_the_connection_reads_it() -> None:
    """0127 is octal to getaddrinfo (87): not loopback, and the address checked is the one
    connected to."""
    url = "http://00000000000000000127.0.0.1/"
    assert await DestinationGuard().check_url(url) == ["87.0.0.1"]
    assert (await DestinationGuard().pin(url)).url == "http://87.0.0.1/"


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254/32"),
        ("http://[::ffff:169.254.169.254]/", "169.254.169.254/32"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254/128"),
    ],
)
async def test_a_metadata_address_is_refused_with_the_one_allowance_that_opens_it(
    url: str, allow: str
) -> None:
    # The hint said "e.g. 10.0.0.0/8", and no network allowed opens a metadata address: only
    # the address itself does, which the refusal now names.
    with pytest.raises(RefusedDestinationError) as refused:
        await DestinationGuard().check_url(url)
    said = str(refused.value)
    assert f"allow exactly it with AMBIENT_FETCH_ALLOW_CIDRS={allow} only if intended" in said
    with pytest.raises(RefusedDestinationError):
        await DestinationGuard(["169.254.0.0/16", "fd00::/8"]).check_url(url)
    await DestinationGuard([allow]).check_url(url)  # as the refusal says
    # Said on a page where a page's redirect led there (its check's stored error).
    zh = failed_said(f"redirected to {url}: {said}", Words(Language.ZH))
    assert f"请运维只放行这一个地址：AMBIENT_FETCH_ALLOW_CIDRS={allow}" in zh, zh
