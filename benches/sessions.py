"""Thousands of logged-in sessions (RSS, descriptors) and a thousand transfers at once.

Phases of benches/bench.py: `phases(b)` returns (name, function) pairs, run in order with the
Bench `b` (its simulators, sizes and `quick` flag); rows go to the table with add_row.
"""


def phases(b):
    return []
