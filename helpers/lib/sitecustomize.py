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

# Last, in a sandbox whose agent started this interpreter before its run
# arrived (CRONIUM_PRESTART_FD, which only the agent sets): wait for the run
# here. See cronium-prestart.py; a failure there ends the process.
try:
    import os as _os
    _prestart = _os.environ.get("CRONIUM_PRESTART_FD") is not None
except Exception:
    _prestart = False
if _prestart:
    try:
        _p = _os.path.join(_os.path.dirname(__file__), "cronium-prestart.py")
        with open(_p, "rb") as _f:
            _code = compile(_f.read(), _p, "exec")
        del _p, _f
        exec(_code, {"__name__": "cronium_prestart"})
        del _code
    except BaseException:
        _os._exit(70)
del _prestart
try:
    del _os
except NameError:
    pass
