'use strict';
// Loaded by NODE_OPTIONS=--require: makes the runtime helpers the global
// `cronium`, so scripts need no require line. Never breaks start-up.
try {
  if (globalThis.cronium === undefined) globalThis.cronium = require('./cronium.js');
} catch (e) {
  // leave `cronium` undefined rather than fail the script
}

// In a sandbox whose agent started this interpreter before its run arrived
// (CRONIUM_PRESTART_FD, which only the agent sets), with the run's command
// line: wait for the launch message (the environment this interpreter was
// started with and the run's), make the run's this process's environment
// as a fresh start with it would have it, close the pipe and return; node
// then runs the script named on its command line, which the agent wrote
// meanwhile. Without a launch message (the agent discarded this
// interpreter) it exits. Nothing of it stays behind. See agent/prestart.go.
if (process.env.CRONIUM_PRESTART_FD !== undefined) {
  (() => {
    const fs = require('fs');
    const fd = Number(process.env.CRONIUM_PRESTART_FD);
    const magic = 'cronium-launch\0';
    const buf = Buffer.allocUnsafe(1 << 16);
    const chunks = [];
    const chunk = (n) => chunks.push(Buffer.from(buf.subarray(0, n)));
    // The two environments of a launch message, or null.
    const parse = (bytes) => {
      const msg = bytes.toString('utf8');
      if (!msg.startsWith(magic)) return null;
      const items = msg.slice(magic.length).split('\0');
      const end = items.indexOf('');
      const last = items.indexOf('', end + 1);
      if (end < 0 || last < 0) return null;
      const entry = (e) => { const i = e.indexOf('='); return [e.slice(0, i), e.slice(i + 1)]; };
      return [new Map(items.slice(0, end).map(entry)), items.slice(end + 1, last).map(entry)];
    };
    // What start-up changed in the environment it was given.
    const diff = (given) => {
      const now = Object.keys(process.env);
      return [now, now.filter((k) => given.get(k) !== process.env[k]).map((k) => [k, process.env[k]]), [...given.keys()].filter((k) => !now.includes(k))];
    };
    // Now, not once the run arrived: run what the launch runs once, with no
    // effect, so that node has compiled it; and let V8 collect the young
    // generation start-up filled (a scavenge of several milliseconds
    // otherwise falls due right after the launch), by making short-lived
    // garbage until the heap in use shrinks: one scavenge ran, and the young
    // generation is empty.
    chunk(0);
    diff(parse(Buffer.concat(chunks.concat(Buffer.from(magic + 'A=1\0\0B=2\0\0'))))[0]);
    chunks.length = 0;
    const junk = new Array(64);
    for (let i = 0, used = process.memoryUsage().heapUsed; i < 1e6; i++) {
      junk[i & 63] = [i];
      if ((i & 1023) === 1023) {
        const now = process.memoryUsage().heapUsed;
        if (now < used) break;
        used = now;
      }
    }
    junk.length = 0;
    try {
      for (;;) {
        let n;
        try {
          n = fs.readSync(fd, buf, 0, buf.length, null);
        } catch (e) {
          if (e.code === 'EINTR') continue;
          throw e;
        }
        if (n === 0) break;
        chunk(n);
      }
    } catch (e) {
      process.exit(70);
    }
    const launch = parse(Buffer.concat(chunks));
    if (launch === null) process.exit(70);
    const [given, run] = launch;
    const [now, changed, gone] = diff(given);
    for (const k of now) delete process.env[k];
    for (const [k, v] of run) process.env[k] = v;
    for (const k of gone) delete process.env[k];
    for (const [k, v] of changed) process.env[k] = v;
    fs.closeSync(fd);
  })();
}
