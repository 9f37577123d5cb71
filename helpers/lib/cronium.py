"""Cronium runtime helpers for Python (standard library only).

sitecustomize.py makes this module the builtin ``cronium``, so scripts call
``cronium.getVariable("KEY")`` without importing anything; ``import cronium``
works too. Every call is one JSON line over the runtime API unix socket; an
error reply raises CroniumError.
"""

import json
import os
import socket
import time

__all__ = [
    "CroniumError", "input", "output", "getVariable", "setVariable", "deleteVariable",
    "listVariables", "increment", "setCondition", "getCondition", "event",
    "get_variable", "set_variable", "delete_variable", "list_variables",
    "set_condition", "get_condition",
]

_TIMEOUT = 30
_MAX_REPLY = 16 << 20


class CroniumError(Exception):
    """The runtime API refused a call or could not be reached. code is the
    kind of refusal when the API gave one: invalid, not_found, conflict,
    forbidden, unavailable, internal or rate_limited (None when unreachable)."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def _call(op, **fields):
    # A call refused by the rate limit (100 a second, a burst of 200) is
    # tried again, waiting longer each time (up to about 10 s in all).
    wait = 0.02
    for attempt in range(10):
        rep = _call_once(op, **fields)
        if rep.get("code") != "rate_limited" or attempt == 9:
            break
        time.sleep(wait)
        wait = min(wait * 2, 2.0)
    if not rep.get("ok"):
        raise CroniumError(rep.get("error") or "the runtime API failed without a message", rep.get("code"))
    return rep.get("value")


def _call_once(op, **fields):
    token = os.environ.get("CRONIUM_RUNTIME_TOKEN")
    if not token:
        raise CroniumError("CRONIUM_RUNTIME_TOKEN is not set: the runtime API is only available inside a Cronium execution")
    path = os.environ.get("CRONIUM_API_SOCKET") or "/run/cronium/api.sock"
    line = json.dumps(dict(fields, token=token, op=op), allow_nan=False).encode() + b"\n"
    reply = bytearray()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(_TIMEOUT)
            s.connect(path)
            s.sendall(line)
            while b"\n" not in reply:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
                if len(reply) > _MAX_REPLY:
                    raise CroniumError("the runtime API reply is too large")
    except OSError as e:
        raise CroniumError("cannot reach the runtime API at %s: %s" % (path, e)) from None
    try:
        rep = json.loads(reply)
    except ValueError:
        raise CroniumError("the runtime API reply is not JSON") from None
    if not isinstance(rep, dict):
        raise CroniumError("the runtime API reply is not a JSON object")
    return rep


def _key(key):
    if not isinstance(key, str):
        raise TypeError("cronium: variable key must be a string, not %s" % type(key).__name__)
    return key


def input():
    """The execution's JSON input ({} when there is none)."""
    value = _call("input")
    return {} if value is None else value


def output(obj):
    """Store obj (anything JSON can encode) as the execution's output."""
    _call("output", value=obj)


def getVariable(key):
    """The variable's value, or None when it is unset."""
    return _call("getVariable", key=_key(key))


def setVariable(key, value):
    """Store value (anything JSON can encode) under key."""
    _call("setVariable", key=_key(key), value=value)


def deleteVariable(key):
    _call("deleteVariable", key=_key(key))


def listVariables():
    """Every variable as a dict of key -> value."""
    return _call("listVariables") or {}


def increment(key, by=1):
    """Add by to a numeric variable (unset counts as 0); returns the new value."""
    if isinstance(by, bool) or not isinstance(by, (int, float)):
        raise TypeError("cronium: increment needs a number, not %s" % type(by).__name__)
    return _call("increment", key=_key(key), value=by)


def setCondition(flag):
    """Set the execution's condition (a bool) for conditional actions."""
    if not isinstance(flag, bool):
        raise TypeError("cronium: setCondition needs a bool, not %s" % type(flag).__name__)
    _call("setCondition", value=flag)


def getCondition():
    return bool(_call("getCondition"))


def event():
    """The event and execution metadata (id, name, executionId, attempt, limits, ...)."""
    return _call("event") or {}


get_variable = getVariable
set_variable = setVariable
delete_variable = deleteVariable
list_variables = listVariables
set_condition = setCondition
get_condition = getCondition
