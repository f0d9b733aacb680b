"""Pages in the encoding they declare: many Chinese sites still serve GBK or GB2312, said in
the Content-Type or only in a <meta> of the page, or nowhere."""

# ruff: noqa: F811 - the fixtures `site` and `loopback_deps` are imported and used by name

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from ambient.deps import WorkerDeps
from ambient.storage.repositories import EventRepository
from ambient.watches.models import TaskStatus
from tests.conftest import running_worker
from tests.support.waits import eventually
from tests.watches.site import Site, article
from tests.watches.test_polling import _changes, _checks, fast, start
from tests.watches.test_workflows import loopback_deps, site  # noqa: F401  (fixtures)

META = '<meta charset="gb2312">'
HTTP_EQUIV = '<meta http-equiv="Content-Type" content="text/html; charset=GBK">'


def page(head: str, *paragraphs: str) -> str:
    return article(*paragraphs).replace("<head>", f"<head>{head}")


# (path, what the page says of its encoding in its head, the Content-Type, the encoding)
PAGES = [
    ("/header", "", "text/html; charset=GBK", "gbk"),
    ("/meta-charset", META, "text/html", "gb2312"),
    ("/meta-http-equiv", HTTP_EQUIV, "text/html", "gbk"),
    ("/gb18030", "", "text/html; charset=gb18030", "gb18030"),
    # Said nowhere (an old 政府/学校 site): not UTF-8, read as a zh-CN browser reads it.
    ("/undeclared", "", "text/html", "gbk"),
    # Saved as UTF-16 (Windows' "Unicode"): its byte order mark says so, whatever the header.
    ("/utf-16", "", "text/html; charset=utf-8", "utf-16"),
]


async def test_pages_in_chinese_encodings_are_read_as_chinese_and_their_keyword_hits(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    state, base = site

    def serve(*paragraphs: str) -> None:
        for path, head, content_type, encoding in PAGES:
            state.encoded[path] = (page(head, *paragraphs).encode(encoding), content_type)

    serve("今日系统运行正常。")
    config = fast([f"{base}{path}" for path, *_ in PAGES], keywords=["数据库故障"])
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await start(dev_env, worker.task_queue, config)
        await eventually(lambda: _checks(handle, 2 * len(PAGES)))
        serve("今日系统运行正常。", "下午发生数据库故障，已恢复。")
        await handle.signal("check_now")
        await eventually(lambda: _changes(handle, len(PAGES)))
        await handle.signal("stop")
        final = TaskStatus.model_validate(await handle.result())
    assert final.detail["hits_total"] == len(PAGES)
    async with loopback_deps.db.session() as session:
        rows = await EventRepository(session).list(task=handle.id, limit=100)
    hits = {
        row.payload["url"]: str(row.payload["excerpt"]) for row in rows if row.kind == "watch.hit"
    }
    assert sorted(hits) == sorted(f"{base}{path}" for path, *_ in PAGES)
    assert all("下午发生数据库故障，已恢复。" in excerpt for excerpt in hits.values()), hits


async def test_a_big5_page_of_hong_kong_is_read_with_its_hkscs_characters(
    dev_env: WorkflowEnvironment, loopback_deps: WorkerDeps, site: tuple[Site, str]
) -> None:
    """A Big5 label means Big5 with HKSCS, as browsers read it: written Cantonese (嘅, 咗, 啲)
    is HKSCS, which Python's plain big5 codec does not know."""
    state, base = site

    def serve(*paragraphs: str) -> None:
        state.encoded["/big5"] = (
            page("", *paragraphs).encode("big5hkscs"),
            "text/html; charset=big5",
        )

    serve("今日港鐵服務正常。")
    config = fast([f"{base}/big5"], keywords=["停咗"])
    async with running_worker(dev_env.client, loopback_deps) as worker:
        handle = await start(dev_env, worker.task_queue, config)
        await eventually(lambda: _checks(handle, 2))
        serve("今日港鐵服務正常。", "東涌綫停咗服務，請改搭巴士。")
        await handle.signal("check_now")
        await eventually(lambda: _changes(handle, 1))
        await handle.signal("stop")
        final = TaskStatus.model_validate(await handle.result())
    assert final.detail["hits_total"] == 1
    async with loopback_deps.db.session() as session:
        rows = await EventRepository(session).list(task=handle.id, limit=100)
    hits = [str(row.payload["excerpt"]) for row in rows if row.kind == "watch.hit"]
    assert len(hits) == 1 and "東涌綫停咗服務，請改搭巴士。" in hits[0], hits


def test_every_label_of_latin_1_and_euc_kr_reads_as_browsers_read_them() -> None:
    """ "latin-1", "l1", "cp819", … were true ISO-8859-1 (curly quotes, dashes and € as
    invisible C1 controls); EUC-KR lacked windows-949's characters (똠 as U+FFFD)."""
    from ambient.clients.page_encodings import page_text

    text = "Price: “10 €” – final"
    for label in ("iso8859-1", "iso_8859-1", "latin-1", "l1", "cp819", "iso-ir-100"):
        assert page_text(text.encode("cp1252"), f"text/html; charset={label}") == text, label
    assert page_text("똠방각하".encode("cp949"), "text/html; charset=euc-kr") == "똠방각하"


def test_an_undeclared_utf8_page_with_a_broken_byte_is_utf8_not_gb18030() -> None:
    """One character a CMS cut by bytes made a whole undeclared UTF-8 page GB18030 mojibake
    (今日数据库故障 as 浠婃棩鏁版嵁搴撴晠闅): no Chinese keyword ever hit; JSON is UTF-8."""
    from ambient.clients.page_encodings import page_text

    cut = "系统公告：维护".encode()[:-1]
    body = b"<p>" + "今日数据库故障已恢复。".encode() + b"</p><p>" + cut + b"...</p>"
    assert "今日数据库故障已恢复。" in page_text(body, "text/html")
    api = '{"status": "数据库故障", "note": "'.encode() + "维护".encode()[:-1] + b'"}'
    assert "数据库故障" in page_text(api, "application/json")
    # Still: an old European page, its accents no UTF-8, and an undeclared GBK page.
    assert page_text("<p>Müller café</p>".encode("latin-1"), "text/html") == "<p>Müller café</p>"
    assert page_text("<p>数据库故障</p>".encode("gbk"), "text/html") == "<p>数据库故障</p>"


def test_an_undeclared_big5_page_is_read_as_big5_and_a_traditional_gbk_page_as_gbk() -> None:
    """A Taiwan or Hong Kong page declaring nothing, in Big5, was read as GB18030: every line
    mojibake, no traditional keyword ever hit."""
    from ambient.clients.page_encodings import page_text

    text = "<p>臺灣新聞：颱風警報發布，各地學校停課，請民眾注意安全。</p>"
    assert page_text(text.encode("big5"), "text/html") == text
    hk = "<p>香港天文台發出八號烈風訊號，市民應留在室內。</p>"
    assert page_text(hk.encode("big5hkscs"), "text/html") == hk
    # Still: traditional characters in GBK, simplified Chinese, an old European page.
    assert page_text(text.encode("gbk"), "text/html") == text
    simplified = "<p>数据库故障已恢复</p>"
    assert page_text(simplified.encode("gbk"), "text/html") == simplified
    assert page_text("<p>Müller café</p>".encode("latin-1"), "text/html") == "<p>Müller café</p>"


def test_a_charset_label_of_a_bytes_codec_is_passed_over_like_an_unknown_label() -> None:
    """A label naming a Python codec that is no text encoding (base64, hex, quoted-printable,
    rot13, zlib, uu) raised LookupError reading the page, and the whole poll failed; UTF-7,
    idna and the like are no label a browser reads a page in either."""
    from ambient.clients.page_encodings import page_text

    body = "<p>数据库故障</p>".encode()
    for label in ("base64", "hex", "quoted-printable", "rot13", "zip", "uu", "utf-7", "idna"):
        assert page_text(body, f"text/html; charset={label}") == "<p>数据库故障</p>", label
    meta = b'<meta http-equiv="Content-Type" content="text/html; charset=quoted-printable">'
    assert page_text(meta + body, "text/html").endswith("<p>数据库故障</p>")
    # The next declaration is read, as after a label no codec knows.
    gbk = b'<meta charset="gbk">' + "<p>数据库故障</p>".encode("gbk")
    assert page_text(gbk, "text/html; charset=hex").endswith("<p>数据库故障</p>")


HEAD_SCRIPTS = "<script>var _hmt = _hmt || []; /* analytics */</script>" * 60  # ~3 KB


def test_a_meta_charset_after_the_heads_scripts_is_read_as_a_browser_reads_it() -> None:
    """A Hong Kong page declaring big5 in a <meta> after 3 KB of the head's inline scripts (a
    browser's parser still honours it): read as if undeclared, its text was GB18030 mojibake
    ("翠ぱゅ祇独…"); a <meta> in the body (a quoted example) is no declaration."""
    from ambient.clients.page_encodings import page_text

    line = "香港天文台發出黃色暴雨警告信號。"
    for meta in ('<meta charset="big5">', HTTP_EQUIV.replace("GBK", "big5")):
        body = f"<html><head>{HEAD_SCRIPTS}{meta}<title>新聞</title></head><body><p>{line}</p>"
        assert line in page_text(body.encode("big5"), "text/html")
    quoted = f"<html><head></head><body>{HEAD_SCRIPTS}<pre>&lt;{META}</pre><p>今日正常。</p>"
    assert "今日正常。" in page_text(quoted.encode("utf-8"), "text/html")


def test_a_gbk_pages_euro_sign_is_read_as_browsers_read_it() -> None:
    """Windows' GBK writes € as the byte 0x80, which browsers read as € (WHATWG's gb18030
    decoder) and Python's codec refuses: "价格：€100 起" was stored "价格：�100 起", and a
    keyword €100 never matched. A GB18030 pair whose second byte is 0x80 stays as it is."""
    from ambient.clients.page_encodings import page_text, undeclared_text

    body = "价格：".encode("gb18030") + b"\x80100 " + "起".encode("gb18030")
    assert page_text(body, "text/html; charset=gbk") == "价格：€100 起"
    assert undeclared_text(body) == "价格：€100 起"
    paired = "丂".encode("gb18030")  # 0x81 0x40; and 0x81 0x80 is 亐
    assert page_text(paired + b"\x81\x80", "text/html; charset=gb2312") == "丂亐"
