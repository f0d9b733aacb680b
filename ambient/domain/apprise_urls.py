"""Apprise URLs read as Apprise reads them: which post to a host the user names (for the
destination guard), which go to a hosted service's own address, and what a URL's plugin is."""

from __future__ import annotations

import functools
import logging
import re
from contextvars import ContextVar
from typing import Any

# Apprise schemes that post over HTTP(S) to a host the user names: the guard checks that host.
# Each is listed with its secure form ("json", "jsons"): `scheme in APPRISE_HTTP` is the one test.
APPRISE_HTTP = {
    "json", "jsons", "xml", "xmls", "form", "forms", "apprise", "apprises", "gotify", "gotifys",
    "ntfy", "ntfys", "mmost", "mmosts", "rocket", "rockets", "matrix", "matrixs", "nctalk",
    "nctalks", "ncloud", "nclouds", "bark", "barks", "lametric", "lametrics", "kodi", "kodis",
    "xbmc", "xbmcs", "emby", "embys", "notica", "noticas", "signal", "signals",
    "hassio", "hassios", "synology", "synologys", "mastodon", "mastodons", "toot", "toots",
    "misskey", "misskeys", "pjet", "pjets", "parsep", "parseps", "enigma2", "enigma2s",
    "jellyfin", "jellyfins", "evolution", "evolutions", "flowtriq", "flowtriqs", "goalert",
    "goalerts", "gorush", "gorushs", "humhub", "humhubs", "onebot", "onebots", "pinglet",
    "pinglets", "smseagle", "smseagles", "notifico", "notificos", "trigv", "trigvs",
}  # fmt: skip
# Apprise schemes of hosted services: Apprise posts to the service's own fixed address, never
# to a host the URL names (tests/notify check this against the installed Apprise).
APPRISE_HOSTED = {
    "46elks", "brevo", "bulksms", "bulkvs", "burstsms", "chanify", "clickatell", "clicksend",
    "cm", "d7sms", "dapnet", "dingtalk", "discord", "eight00com", "elks", "feishu",
    "firehydrant", "flock", "freemobile", "gchat", "github", "groundmail", "groupme",
    "guilded", "gupshup", "httpsms", "ifttt", "ilert", "incidentio", "join", "kavenegar",
    "kook", "kudosity", "kumulos", "lark", "lauther", "lfg", "line", "mailersend",
    "mobilemessage", "mobilemsg", "msg91", "msgbird", "nexmo", "notica", "noticas",
    "notifiarr", "octopush", "onesignal", "pagertree", "pbul", "plivo", "postmark", "pover",
    "prowl", "push", "pushed", "pushme", "pushplus", "pushward", "pushy", "qq", "resend",
    "revolt", "schan", "sendgrid", "serwersms", "seven", "sfr", "signalgrid", "signl4",
    "simplepush", "smsc", "smsmanager", "smsmgr", "smstunnel", "smtp2go", "spike", "splunk",
    "spugpush", "spush", "stackfield", "strmlabs", "telesign", "telnyx", "tgram", "threema",
    "viber", "victorops", "voipms", "vonage", "webex", "wechat", "wecom", "wecombot", "whapi",
    "whatsapp", "wpush", "wxpusher", "wxteams", "youlmk", "zalo", "slack", "twilio", "zoom",
    "fcm", "reddit", "twitter", "x", "pagerduty", "opsgenie", "mailgun", "sparkpost",
    "squadcast",
}  # fmt: skip

# Modes of self-hosted services' Apprise plugins that post to the service's own address:
# notica.us, ntfy.sh, webhooks.t2bot.io, developer.lametric.com.
APPRISE_HOSTED_MODES = {"official", "cloud", "t2bot"}


class _TypoQuiet(logging.Filter):
    """Apprise logs a URL it cannot read at ERROR or WARNING ("Unparseable Telegram URL", "An
    invalid Slack Token (…) was specified"), quoting what was typed, a token perhaps: a user's
    typo, refused as such where it is checked, not the server's failure, and no log's to keep.
    Every record above DEBUG is dropped while a URL is read (a plugin disabled on this system
    is asked before, `apprise_disabled`, and logged by the check)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno <= logging.DEBUG or not _READING.get()


_READING: ContextVar[bool] = ContextVar("apprise_reading", default=False)
_TYPO_QUIET = _TypoQuiet()


# One URL is read here several times a delivery (checked, aimed, shown): Apprise's parse is
# ~1 ms of CPU, and its answer depends on the text alone.
@functools.lru_cache(maxsize=256)
def apprise_plugin(value: str) -> Any | None:
    """Apprise's reading of ``value``: the plugin of its service, or None (a token missing, an
    ID of the wrong form: every send of it would fail)."""
    import apprise  # here: it loads every Apprise plugin, wanted only to check such a URL

    logging.getLogger("apprise").addFilter(_TYPO_QUIET)  # once: a filter is added once
    reading = _READING.set(True)
    try:
        return apprise.Apprise.instantiate(value)
    finally:
        _READING.reset(reading)


def apprise_disabled(scheme: str) -> bool:
    """Whether Apprise disabled ``scheme``'s plugin on this machine (its requirements missing):
    every URL of it is refused, the operator's to fix, not the user's."""
    from apprise.apprise import N_MGR

    return scheme in N_MGR and not N_MGR[scheme].enabled


def apprise_http_url(value: str) -> str | None:
    """The http(s) URL an Apprise URL of a self-hosted HTTP service posts to (for the guard):
    the host as Apprise itself reads it (json://a@X@Y posts to X), else after the last `@`;
    None in a hosted mode, where the first part is a token (notica://TOKEN, ntfy://TOPIC)."""
    scheme, _, rest = value.partition("://")
    scheme = scheme.lower()
    secure = scheme.endswith("s") and scheme[:-1] in APPRISE_HTTP
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    if (plugin := apprise_plugin(value)) is not None:  # else Apprise refuses it at send
        if not plugin.host or getattr(plugin, "mode", None) in APPRISE_HOSTED_MODES:
            return None  # the service's own address (trigv://KEY, notifico://ID/HOOK)
        secure = bool(plugin.secure)
        authority = plugin.host + (f":{plugin.port}" if plugin.port else "")
    return ("https://" if secure else "http://") + authority + "/"
