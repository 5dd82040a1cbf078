"""The words of an organisation's searched names: the vocabulary its typo search corrects against.

A typo search used to score every row that shares a few trigrams with the query: "smiht" scored all
1,611 Smiths of 100k contacts to rank five (docs/benchmarks.md). Correcting the query's words
against this short list of distinct words (about a thousand at bench size L) and then running the
exact search with the corrected words finds the same people for the price of an exact search.

PostgreSQL only: triggers written by migration 0012 add the words of every inserted or updated
contact, lead, company and deal, whatever wrote it (a form, an import, the CLI seed, psql). SQLite
has the table but never fills it: its search has no typo tier. Words are only added, never removed:
a word whose records are gone corrects a query to a word the exact search then does not find. Two
transactions adding the same new word at once may both add it; readers ignore the duplicate, and
nobody waits on a unique index.

No foreign key on org_id, like the tallies: the triggers insert for an organisation as it is written.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Identity, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from crm_web.models.base import TRIGGER_ROW_ID, Base

# The words the triggers keep: letters, apostrophes and hyphens ("o'brien", "mary-jane"), 3 to 50 of
# them. Digits split words ("smith59@example.com" adds "smith", "example", "com").
MIN_WORD_LENGTH = 3
MAX_WORD_LENGTH = 50


class SearchWord(Base):
    """One distinct word of the organisation's searched names (lower case)."""

    __tablename__ = "search_words"
    __table_args__ = (
        Index("ix_search_words_org_word", "org_id", "word"),
        # The typo search's lookup (`word % typed`). A plain index on SQLite, which never reads it.
        Index("search_word_trgm_idx", "word", postgresql_using="gin", postgresql_ops={"word": "gin_trgm_ops"}),
    )

    id: Mapped[int] = mapped_column(TRIGGER_ROW_ID, Identity(), primary_key=True)
    org_id: Mapped[uuid.UUID]
    word: Mapped[str] = mapped_column(String(MAX_WORD_LENGTH))
