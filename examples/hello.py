#!/usr/bin/env python3
"""Hello from a Cronium sandbox: who am I, what can I see, what did I get?"""
import json, os, sys

raw = sys.stdin.read()
data = json.loads(raw) if raw.strip() else {}
print("hello from python", sys.version.split()[0])
print("uid:", os.getuid(), "cwd:", os.getcwd())
print("input:", json.dumps(data))
print("execution:", os.environ.get("CRONIUM_EXECUTION_ID"))
