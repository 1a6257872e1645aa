"""The decision engine: evidence -> readiness -> cost -> targets -> checklist -> recommendation
-> report (see docs/decide.md).

`rung.decide` is both this package and the public function (rung.api.decide): the package
module is callable, so `rung.decide(config, store)` decides whichever of the two a script
reaches first (importing a submodule such as rung.decide.recommend makes `rung.decide` the
package).
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from rung.api import decide

        return decide(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
