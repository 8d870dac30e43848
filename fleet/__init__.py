"""fleet: declarative Docker fleet deployment over SSH."""

import sys
import types

__version__ = "0.1.0"

# httpx's __init__ imports its own command-line tool (httpx._main), which pulls in click,
# rich.syntax and pygments: ≈ 0.13 s of every fleet command's start for a CLI fleet never
# runs. A stand-in, set only while httpx is not loaded yet, skips it (httpx's own fallback
# for a missing CLI is the same: a `main` that says the CLI is unavailable).
if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
    _cli = types.ModuleType("httpx._main")

    def _main() -> None:
        raise SystemExit("the httpx command-line tool is not loaded inside fleet")

    _cli.main = _main  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = _cli
