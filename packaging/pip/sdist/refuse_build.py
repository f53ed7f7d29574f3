"""A PEP 517 build backend that refuses to build.

agentsecrets is a Go program shipped to pip as platform wheels that carry
the compiled binary. This source distribution exists only so that pip,
finding no wheel for a platform, stops with an explanation instead of
trying to compile anything.
"""

MESSAGE = """
agentsecrets has no wheel for this platform, and this source distribution
cannot be built: agentsecrets is a Go program published as binary wheels for
linux (x86_64, aarch64), macOS (x86_64, arm64) and Windows (x86_64).

Install it another way instead:
  - a release archive: https://github.com/agentsecrets/agentsecrets/releases
  - npm:   npm i -g agentsecrets
  - Go:    go install github.com/agentsecrets/agentsecrets@latest
"""


def _refuse(*_args, **_kwargs):
    raise SystemExit(MESSAGE)


get_requires_for_build_wheel = _refuse
prepare_metadata_for_build_wheel = _refuse
build_wheel = _refuse
get_requires_for_build_sdist = _refuse
build_sdist = _refuse
