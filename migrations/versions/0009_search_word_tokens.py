"""Search on MariaDB: the index keeps a run of letters, of digits or of symbols as one
token (Groonga's ``TokenBigram``) instead of cutting every run into bigrams
(``TokenBigramSplitSymbolAlphaDigit``). Chinese, Japanese, Korean and other scripts
without spaces are still cut into bigrams.

Mroonga's work per indexed message was the largest single cost of a send on MariaDB
(the indexer runs after the commit, but on the same machine): a 64-character Latin
message cost it 33 µs to index, 12 µs with word tokens. A prefix of a word is still
found: Groonga searches the last token of a phrase by prefix (``search_sql``).

The index is rebuilt from the content the Mroonga table keeps (no message is read
again). Nothing to do where the index is absent (no Mroonga) or on SQLite.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 10:30:00
"""
from alembic import context, op
from sqlalchemy import text

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

TABLE = "message_search"


def _index_present(bind) -> bool:
    if bind.dialect.name not in ("mysql", "mariadb") or context.is_offline_mode():
        return False
    return bool(bind.execute(text(
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = :t"), {"t": TABLE}).all())


def _tokenizer(tokenizer: str) -> None:
    bind = op.get_bind()
    if not _index_present(bind):
        return
    bind.execute(text(
        f"ALTER TABLE {TABLE} DROP INDEX ft_content, ADD FULLTEXT INDEX ft_content (content) "
        f"COMMENT 'tokenizer \"{tokenizer}\", normalizer \"NormalizerAuto\"'"))


def upgrade():
    _tokenizer("TokenBigram")


def downgrade():
    _tokenizer("TokenBigramSplitSymbolAlphaDigit")
