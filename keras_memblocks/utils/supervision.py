"""How a supervised `memblocks train` process tells its supervisor that every
process of its run has started (no Keras here: the supervisor never imports it).

`cli._supervised` runs one process of a multi-worker or data-parallel run in
a child and waits on a pipe whose writing end the child finds in
`MEMBLOCKS_JOINED_FD`; the child writes to it once its peers have joined.
"""

import os

JOINED_FD = "MEMBLOCKS_JOINED_FD"
# Seconds a process waits for every other one to start (`memblocks train --peer-timeout`).
DEFAULT_PEER_TIMEOUT = 300


def say_joined():
    """Tells the supervising `memblocks train` that every process of the run
    has started; nothing when there is none."""
    descriptor = os.environ.pop(JOINED_FD, None)
    if descriptor:
        try:
            os.write(int(descriptor), b"1")
            os.close(int(descriptor))
        except (OSError, ValueError):
            pass  # not a pipe of ours: nobody waits on it
