"""Storage: the schema, and every raw-SQL path to the database, in one place.

There are three ways to the database, each for a reason that was measured:

* ``models`` and the ORM (``db.session``) for everything that is not hot:
  accounts, follows, groups, notices, cursors. The service uses it directly.
* ``queries``: plain SQL for the reads that run on every page, connect or API
  call (history, unread, sync, conversation state, token owner), at about a
  third of the ORM's CPU, on the request's session or, for the reads of every
  connect, on a pooled Core connection.
* ``committer_sql``: the message committer's statements on one bare DB-API
  connection (one lookup, the id allocation, a hand-rendered multi-row INSERT,
  and on MySQL the batch's writes sent as one multi-statement query),
  because SQLAlchemy Core cost more CPU per statement than MariaDB took to
  answer, in the hottest loop of the server.

``replica`` chooses, for history, sync and search, between the primary and the
optional read replica (``DATABASE_REPLICA_URL``), by a read-your-writes rule.

``pool`` pings a pooled connection before use only when it sat idle; ``reads``
keeps, on MySQL, autocommit connections for a connect's one-statement reads.

``counters`` holds the integer counters with expiry (Redis, or in-process).
Every SQL string with a MySQL and a SQLite variant is written here and nowhere
else.
"""
