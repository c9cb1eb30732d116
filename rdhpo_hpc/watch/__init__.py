"""``rdhpo watch RESULTS``: a live view of a study, read from its journal only (see docs/watch.md).

:mod:`.state` folds journal records into a view (pure), :mod:`.source` reads the journal
incrementally, :mod:`.snapshot` turns the view into one screen of strings, :mod:`.view` draws it
with rich in a terminal, :mod:`.plain` as text lines elsewhere; :mod:`.app` picks the mode.
"""
