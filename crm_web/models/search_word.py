"""The words of an organisation's searched names: the vocabulary its typo search corrects against.

Scoring every row that shares a few trigrams with a typo would read all the Smiths to rank five for
"smiht". Correcting the query's words against this short list of distinct words and then running the
exact search with the corrected words finds the same people for the price of an exact search.

PostgreSQL only: triggers written by migration 0012 keep it, whatever wrote the rows (a form, an
import, the CLI seed, psql): an insert or a change of a searched column adds the new words; a
permanent delete removes the words no remaining row contains, so a purged name leaves nothing
behind (soft delete keeps them: the record can come back, and the search never finds it). A word
is a run of letters, apostrophes and hyphens, and each hyphenated part, of 3 to 50 characters,
lower case ("o'brien-hale", "o'brien", "hale"; digits split words). SQLite has the table but never
fills it: its search has no typo tier. Two transactions adding the same new word at once may both
add it; readers ignore the duplicate, and nobody waits on a unique index.

No foreign key on org_id, like the tallies: the triggers insert for an organisation as it is written.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Identity, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from crm_web.models.base import TRIGGER_ROW_ID, Base

MAX_WORD_LENGTH = 50


class SearchWord(Base):
    """One distinct word of the organisation's searched names (lower case)."""

    __tablename__ = "search_words"
    __table_args__ = (
        Index("ix_search_words_org_word", "org_id", "word"),
        # The typo search's lookup (`org_id = :org AND word % typed`), one organisation's words only
        # (btree_gin). A plain index on SQLite, which never reads it.
        Index(
            "search_word_trgm_idx", "org_id", "word", postgresql_using="gin", postgresql_ops={"word": "gin_trgm_ops"}
        ),
    )

    id: Mapped[int] = mapped_column(TRIGGER_ROW_ID, Identity(), primary_key=True)
    org_id: Mapped[uuid.UUID]
    word: Mapped[str] = mapped_column(String(MAX_WORD_LENGTH))
