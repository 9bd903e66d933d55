"""/api/search: the messages the caller can read that match a query (docs/protocol.md, Search)."""
from __future__ import annotations

from typing import Annotated

from ..identity import spend_flood_allowance
from ..service import validation as v
from . import bp
from .answers import Answer, Message
from .fields import HistoryLimit, QueryCursor, query_int, search_text
from .inputs import Query
from .operation import operation
from .request import me, services

SearchText = Annotated[str, search_text(200, envelope=False)]  # after the conversation
QueryId = Annotated[int, query_int(1, v.MAX_ID)]


class SearchQuery(Query):
    """``q`` (1 to 200 characters once trimmed), optionally one conversation, a page."""

    q: SearchText | None = None
    user_id: QueryId | None = None
    group_id: QueryId | None = None
    before_id: QueryCursor | None = None
    limit: HistoryLimit | None = None


class Found(Message):
    """A message as history shows it, with the matches' code point offsets in ``content``."""

    highlights: list[list[int]]


class SearchResults(Answer):
    """Matches, newest first; ``has_more``: older ones follow (page with ``before_id``)."""

    messages: list[Found]
    has_more: bool


@bp.get("/search")
@operation({200: SearchResults}, query=SearchQuery)
def search(query: SearchQuery):
    """Search the caller's private chats and groups (or one of them), newest first."""
    # A read, but one that can cost the database a scan: it counts against the flood
    # limit as a write does, so one client cannot keep the database busy with searches.
    spend_flood_allowance()
    return services().search.search(me(), query.q, user=query.user_id, group=query.group_id,
                                    before_id=query.before_id, limit_text=query.limit)
