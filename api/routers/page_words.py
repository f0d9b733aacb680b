"""How a page says what went wrong: a service's refusal, a form's field errors, a worker that
did not answer, in the page's language (the services word theirs for MCP callers)."""

from __future__ import annotations

import re

from pydantic import ValidationError

from ambient import no_answer
from ambient.domain import field_errors as fields
from ambient.refusals import N_, Refusal
from ambient.watches.inputs import ConfigError
from api.i18n import Words, in_words
from mcp_server.tools import tools_named


def field_errors(exc: ValidationError | ConfigError, _: Words, labels: dict[str, str]) -> str:
    """Field errors as the form shows them, by ``labels`` and in the page's language."""
    # A service's ConfigError names fields inside the config: they are the form's own fields.
    errors = exc.in_config if isinstance(exc, ConfigError) else fields.field_errors(exc)
    parts = []
    for raw, message in errors:
        loc = [str(p) for p in raw]
        label = labels.get(loc[0]) if loc else None
        if label is None:
            where = ".".join(loc) or _("value")
        else:
            where = _(label)
            # Lists come from one line per item: "Pages, line 2".
            if loc[1:2] and loc[1].isdigit():
                where = _("%(label)s, line %(line)d", label=where, line=int(loc[1]) + 1)
        parts.append(f"{where}: {in_words(message, _)}")
    return "; ".join(parts)


# The services word their errors for MCP callers ("...; call list_tasks"); a page says what
# happened in its own words and offers its own links instead.
def worker_unanswered(exc: Exception, _: Words, silent: str) -> str | None:
    """What a page says of a service's refusal because the worker did not answer: ``silent``
    (a msgid) when it did not in time (stopped, or too busy: nothing was done, and the feature
    is not down), its own sentence when it keeps failing the run's workflow task (trying again
    does not help); None for any other refusal."""
    trouble = no_answer.worker_trouble(str(exc))
    if trouble == "failing":
        return _(
            "Its worker keeps failing it (Temporal: Workflow Task in failed state); the worker's "
            "log says why. If it goes on, an operator has to mend it."
        )
    return _(silent) if trouble == "silent" else None


def what_went_wrong(exc: Exception, _: Words) -> str:
    """A service error as a page says it: its Refusal translated, else its own words without
    the clauses that name an MCP tool (what to call next is for an agent, not the page)."""
    # The catalog's translation names no tool.
    said = exc if isinstance(exc, Refusal) else exc.args[0] if exc.args else None
    if isinstance(said, Refusal) and _(said.msgid) != said.msgid:
        return in_words(said, _)
    clauses = str(exc).split("; ")
    text = "; ".join(clause for clause in clauses if not tools_named(clause)) or clauses[0]
    # A sentence starts with a capital, but an id it starts with ("remediation/...") is not
    # a word of it: copied from the page, it must still be the id.
    if re.match(r"[a-z]+(?![\w/.-])", text):
        return text[:1].upper() + text[1:]
    return text


# pydantic's refusals the pages say in their own words (by its message templates, the msgids
# of the Refusals ambient.domain.field_errors makes of them); any other is said in English.
PYDANTIC_WORDS = (
    N_("required"),
    N_("Input should be greater than or equal to %(ge)s"),
    N_("Input should be less than or equal to %(le)s"),
    N_("Input should be a valid integer, unable to parse string as an integer"),
    N_("Input should be a valid integer, got a number with a fractional part"),
    N_("Input should be a finite number"),
    N_("Input should be a valid number"),
    N_("Input should be a valid URL, %(error)s"),
    N_("relative URL without a base"),
    N_("invalid IPv6 address"),
    N_("empty host"),
    N_("invalid port number"),
    N_("URL scheme should be %(expected_schemes)s"),
    N_("value is not a valid email address: %(reason)s"),
    N_("String should match pattern '%(pattern)s'"),
    N_("String should have at most %(max_length)s character%(expected_plural)s"),
    N_(
        "%(field_type)s should have at most %(max_length)s item%(expected_plural)s after "
        "validation, not %(actual_length)s"
    ),
    # Pages of only spaces pass the browser's check of a required box, and come as no page.
    N_(
        "%(field_type)s should have at least %(min_length)s item%(expected_plural)s after "
        "validation, not %(actual_length)s"
    ),
    N_("URL should have at most %(max_length)s character%(expected_plural)s"),
)
