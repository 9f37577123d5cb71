# Cronium: make the runtime helpers the builtin `cronium`, so scripts need no
# import. Nothing here may break interpreter start-up.
# The module is loaded on first use (its imports cost a script that never
# calls it ~15% of python's start-up).
try:
    import builtins
    import importlib.util
    import sys

    _spec = importlib.util.find_spec("cronium")
    if _spec is not None and _spec.loader is not None:
        _spec.loader = importlib.util.LazyLoader(_spec.loader)
        _mod = importlib.util.module_from_spec(_spec)
        sys.modules["cronium"] = _mod
        _spec.loader.exec_module(_mod)
        builtins.cronium = _mod
except Exception:
    pass

# Then run the image's own sitecustomize, which this file shadows, if any.
try:
    import importlib.machinery
    import importlib.util
    import os
    import sys

    _here = os.path.dirname(os.path.realpath(__file__))
    _spec = importlib.machinery.PathFinder.find_spec(
        "sitecustomize", [p for p in sys.path if os.path.realpath(p or ".") != _here])
    if _spec is not None and _spec.loader is not None:
        _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
except Exception:
    pass
