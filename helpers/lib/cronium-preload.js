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
    const chunks = [];
    const buf = Buffer.allocUnsafe(1 << 16);
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
        chunks.push(Buffer.from(buf.subarray(0, n)));
      }
    } catch (e) {
      process.exit(70);
    }
    const magic = 'cronium-launch\0';
    const msg = Buffer.concat(chunks).toString('utf8');
    if (!msg.startsWith(magic)) process.exit(70);
    const items = msg.slice(magic.length).split('\0');
    const end = items.indexOf('');
    const last = items.indexOf('', end + 1);
    if (end < 0 || last < 0) process.exit(70);
    const entry = (e) => { const i = e.indexOf('='); return [e.slice(0, i), e.slice(i + 1)]; };
    const given = new Map(items.slice(0, end).map(entry));
    const run = items.slice(end + 1, last).map(entry);
    const now = Object.keys(process.env);
    const changed = now.filter((k) => given.get(k) !== process.env[k]).map((k) => [k, process.env[k]]);
    const gone = [...given.keys()].filter((k) => !now.includes(k));
    for (const k of now) delete process.env[k];
    for (const [k, v] of run) process.env[k] = v;
    for (const k of gone) delete process.env[k];
    for (const [k, v] of changed) process.env[k] = v;
    fs.closeSync(fd);
  })();
}
