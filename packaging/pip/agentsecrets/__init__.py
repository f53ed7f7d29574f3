"""agentsecrets: the native agentsecrets binary, packaged for pip.

The wheel carries one platform's binary in agentsecrets/bin; the
``agentsecrets`` console script (agentsecrets.__main__:main) runs it.
"""

import os
import sys


def find_binary() -> str:
    """Return the path of the binary this wheel installed."""
    name = "agentsecrets.exe" if sys.platform == "win32" else "agentsecrets"
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"agentsecrets binary not found at {path}: reinstall the wheel for this platform "
            "(pip install --force-reinstall agentsecrets)"
        )
    return path
