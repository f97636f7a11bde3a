"""Relay cost: CPU seconds per GiB of qftpd against nginx as the reference byte relay.

Phases of benches/bench.py: `phases(b)` returns (name, function) pairs, run in order with the
Bench `b` (its simulators, sizes and `quick` flag); rows go to the table with add_row.
"""


def phases(b):
    return []
