"""The render worker's program: ``python -m docvlm.reading.render_worker FD [module:function]``.

It serves PDF rendering requests over the socket ``FD`` that its parent passed down (see
``docvlm.reading.pdf.RenderWorker``), running ``docvlm.reading.pdf:serve`` unless another
loop is named.
"""

from __future__ import annotations

import importlib
import sys
from multiprocessing.connection import Connection


def main(argv: list[str]) -> int:
    descriptor = int(argv[0])
    module_name, _, function_name = (
        argv[1] if len(argv) > 1 else "docvlm.reading.pdf:serve"
    ).partition(":")
    loop = getattr(importlib.import_module(module_name), function_name)
    connection = Connection(descriptor)
    try:
        loop(connection)
    except (BrokenPipeError, ConnectionResetError):  # the parent went away: nothing to report
        pass
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
