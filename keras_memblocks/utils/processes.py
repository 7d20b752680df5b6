"""Whether a process is alive: how a lock or a staging folder left by a killed run is told apart."""

import os


def is_alive(pid):
    """Whether process `pid` exists on this machine (another user's counts).

    Examples:
        >>> import os
        >>> from keras_memblocks.utils.processes import is_alive
        >>> is_alive(os.getpid())
        True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
