"""Small files at a real cluster's latency against a direct REST client, and the time to the first byte of a large listing.

Phases of benches/bench.py: `phases(b)` returns (name, function) pairs, run in order with the
Bench `b` (its simulators, sizes and `quick` flag); rows go to the table with add_row.
"""


def phases(b):
    return []
