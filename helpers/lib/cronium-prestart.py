# Cronium: the agent of a sandbox may start the interpreter of the next run
# before the run arrives, with the run's command line (so sys.argv, the
# script's path and all Python derives from them are the run's). Then
# CRONIUM_PRESTART_FD names the launch pipe, and sitecustomize.py runs this
# file last, once the helpers are loaded. It waits for the launch message:
# the environment this interpreter was started with and the run's. It makes
# the run's this process's environment as a fresh start with it would have
# it (what Python itself changed at start-up, such as LC_CTYPE when it
# coerces the C locale, changed again; the time zone read again), closes
# the pipe and returns: Python goes on to run the script named on its
# command line, which the agent wrote meanwhile. Nothing of it stays behind
# (it runs with globals of its own and imports nothing new); the agent
# checked that no variable acting at start-up differs between the two
# environments. Without a launch message (the agent discarded this
# interpreter) it exits; if making the environment fails, it starts afresh
# here (exec). See agent/prestart.go.


def _main(os, sys):
    fd = int(os.environ["CRONIUM_PRESTART_FD"])
    chunks = []
    try:
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                break
            chunks.append(b)
    except BaseException:
        os._exit(70)
    msg = b"".join(chunks)
    magic = b"cronium-launch\0"
    if not msg.startswith(magic):
        os._exit(70)
    items = msg[len(magic):].split(b"\0")
    try:
        end = items.index(b"")
        given, run = items[:end], items[end + 1:items.index(b"", end + 1)]
    except ValueError:
        os._exit(70)
    run = [e.partition(b"=")[::2] for e in run]
    try:
        env = os.environb
        given = dict(e.partition(b"=")[::2] for e in given)
        changed = [(k, v) for k, v in env.items() if given.get(k) != v]
        gone = [k for k in given if k not in env]
        env.clear()
        for k, v in run:
            env[k] = v
        for k in gone:
            env.pop(k, None)
        for k, v in changed:
            env[k] = v
        # The helpers imported time, which read TZ then: read it again, as
        # the import did (a fresh start reads the run's).
        if "time" in sys.modules:
            sys.modules["time"].tzset()
        os.close(fd)
    except BaseException:
        try:
            os.close(fd)
        except OSError:
            pass
        os.execve("/proc/self/exe", sys.orig_argv, dict(run))


_main(__import__("os"), __import__("sys"))
