"""Safety checks on a study's output path before anything is written (rank 0, at start-up).

A study owns two files: the HDF5 results file ``PATH`` and its journal ``PATH.journal``.  rdhpo
replaces them (``--overwrite``) or rebuilds them (``--resume``), so before it does either it makes
sure that what sits there is its own: a file that is not an rdhpo results file or journal — a
typo'd path onto someone's data, a directory — is refused with a :class:`ConfigError`, even with
``--overwrite`` (which only ever replaces rdhpo results).  No h5py import unless a file exists.
"""

from __future__ import annotations

import os

from ..errors import ConfigError
from .journal import is_journal, journal_path

_ADVICE = "remove it or choose another output path"


def check_output_path(path: str) -> None:
    """Raise :class:`ConfigError` (naming the path) unless rdhpo may create, resume or replace the
    results file ``path`` and its journal: both are absent or rdhpo's own, and the directory they
    go in exists or can be created and is writable."""
    from .hdf5 import can_open, is_empty

    journal = journal_path(path)
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise ConfigError(
            f"output {path!r} is a directory; the output must be a results file path "
            f"such as {os.path.join(path, 'study.h5')!r}"
        )
    _check_parent(path)
    if os.path.lexists(journal):
        if os.path.isdir(journal):
            raise ConfigError(f"journal {journal!r} (beside output {path!r}) is a directory; {_ADVICE}")
        if not is_journal(journal):
            raise ConfigError(
                f"journal {journal!r} (beside output {path!r}) exists and is not an rdhpo "
                f"journal; it is left untouched (--overwrite only replaces rdhpo results): "
                f"{_ADVICE}"
            )
    if os.path.lexists(path):
        if not os.path.isfile(path):
            raise ConfigError(f"output {path!r} exists and is not a regular file; {_ADVICE}")
        # the journal is the complete log: beside a non-empty one, a results file torn by a crash
        # is rdhpo's own (--resume rebuilds it from the journal); an HDF5 file holding nothing
        # (a study killed before its first write) loses nothing when replaced
        vouched = os.path.isfile(journal) and os.path.getsize(journal) > 0
        if not vouched and not can_open(path) and not is_empty(path):
            raise ConfigError(
                f"output {path!r} exists and is not an rdhpo results file; it is left "
                f"untouched (--overwrite only replaces rdhpo results): {_ADVICE}"
            )


def _check_parent(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    probe = parent
    while not os.path.exists(probe):  # the nearest existing ancestor must be a directory
        up = os.path.dirname(probe)
        if up == probe:
            break
        probe = up
    if not os.path.isdir(probe):
        tail = "" if probe == parent else f", so {parent!r} cannot be created"
        raise ConfigError(f"output {path!r}: {probe!r} exists and is not a directory{tail}; {_ADVICE}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"output {path!r}: directory {probe!r} is not writable")
