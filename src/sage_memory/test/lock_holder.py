"""Holds an exclusive lock on a SQLite database until a line arrives on stdin.

`PRAGMA locking_mode=EXCLUSIVE` + `BEGIN EXCLUSIVE` keeps every other connection out, readers
too (a plain BEGIN EXCLUSIVE on a WAL database still lets readers in): what an operator's
sqlite3 shell or a backup tool in exclusive mode does. Prints 'locked' once the lock is held.

Usage: python lock_holder.py DATABASE_FILE
"""
from __future__ import annotations

import sqlite3
import sys


def main() -> int:
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute('PRAGMA locking_mode=EXCLUSIVE')
    con.execute('BEGIN EXCLUSIVE')
    con.execute('SELECT count(*) FROM experiences').fetchone()
    print('locked', flush=True)
    sys.stdin.readline()
    con.execute('COMMIT')
    con.close()
    print('released', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
