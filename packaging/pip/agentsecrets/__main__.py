"""The ``agentsecrets`` console script: replaces this Python process with
the native binary, so stdio, signals and the exit status are the binary's
own. Windows has no exec; there the binary runs as a child and its exit
status is passed on.
"""

import os
import subprocess
import sys

from agentsecrets import find_binary


def main() -> None:
    try:
        binary = find_binary()
    except FileNotFoundError as err:
        print(f"agentsecrets: {err}", file=sys.stderr)
        sys.exit(1)
    args = [binary, *sys.argv[1:]]
    if sys.platform == "win32":
        try:
            sys.exit(subprocess.call(args))
        except KeyboardInterrupt:
            # The console delivered Ctrl-C to the binary too; its status follows.
            sys.exit(130)
    os.execv(binary, args)


if __name__ == "__main__":
    main()
