"""What every store this process holds itself shares, whatever its database: the merge rules
(:mod:`wmx.store.merge`), the apply algorithm written once over them (:mod:`wmx.store.apply`)
and the small interface a store implements for it (:mod:`wmx.store.protocol`).

A backend supplies only how to read and write one version (PouchDB's adapters supply
``writeDoc``; ``winningRev`` and ``processDocs`` are shared). Nothing here knows SQL.
"""
