"""Domain errors of the memory package."""
from sage_common.errors import SageError


class MemoryStoreError(SageError):
    """The store cannot be opened, migrated or written (configuration or database fault)."""


class QueryError(MemoryStoreError):
    """A recall query is malformed or cannot be answered; the message says why."""


class TransferError(MemoryStoreError):
    """An export, import or sync failed (bad file, unreachable database)."""


class StoreUnavailableError(MemoryStoreError):
    """The database server cannot be reached (may succeed later: retry)."""


class StoreBusyError(StoreUnavailableError):
    """The database file is locked by another process (retry once it is released)."""
