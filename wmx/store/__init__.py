"""What every store this process holds itself shares, whatever its database: the merge rules
(:mod:`wmx.store.merge`), the apply algorithm written once over them (:mod:`wmx.store.apply`)
and the small interface a store implements for it (:mod:`wmx.store.protocol`); the SQL both
stores run, written once (:mod:`wmx.store.sql`), and how each database spells it
(:mod:`wmx.store.dialect`).

A backend supplies only its connection, its lock, its errors and how to read and write one
version (PouchDB's adapters supply ``writeDoc``; ``winningRev`` and ``processDocs`` are
shared). The rules know no SQL, and the SQL knows no rule.
"""
