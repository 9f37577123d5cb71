'use strict';
// Cronium runtime helpers for Node. cronium-preload.js (NODE_OPTIONS=--require)
// makes this module the global `cronium`; require('cronium') works too
// (NODE_PATH). Every call is synchronous: Node has no synchronous socket, so
// each one runs the agent's API client (`/.cronium/agent api`), which sends
// the request line to the runtime API socket and prints the reply line.
// `await cronium.event()` works as well, awaiting a plain value.
const { execFileSync } = require('child_process');

class CroniumError extends Error {
  // code is the kind of refusal when the API gave one: invalid, not_found,
  // conflict, forbidden, unavailable, internal or rate_limited.
  constructor(message, code) {
    super(message);
    this.name = 'CroniumError';
    this.code = code;
  }
}

function call(op, fields) {
  const agent = process.env.CRONIUM_AGENT_BIN || '/.cronium/agent';
  const request = JSON.stringify(Object.assign({ op }, fields)) + '\n';
  let out;
  try {
    out = execFileSync(agent, ['api'], {
      input: request, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 64 << 20, timeout: 60000,
    });
  } catch (e) {
    // The client exits 1 on an error reply and still prints the reply line.
    out = e.stdout;
    if (!out || !out.length) {
      const why = e.code === 'ENOENT' ? `runtime API client not found at ${agent}`
        : String(e.stderr || e.message).trim().replace(/^cronium: /, '');
      throw new CroniumError(why || `runtime API client failed (${agent})`);
    }
  }
  let reply;
  try {
    reply = JSON.parse(out.toString('utf8'));
  } catch (e) {
    throw new CroniumError('the runtime API reply is not JSON');
  }
  if (!reply.ok) throw new CroniumError(reply.error || 'the runtime API failed without a message', reply.code);
  return reply.value === undefined ? null : reply.value;
}

function key(k) {
  if (typeof k !== 'string') throw new TypeError(`cronium: variable key must be a string, not ${typeof k}`);
  return k;
}

module.exports = {
  CroniumError,
  /** The execution's JSON input ({} when there is none). */
  input: () => call('input') ?? {},
  /** Store obj (anything JSON can encode) as the execution's output. */
  output: (obj) => { call('output', { value: obj === undefined ? null : obj }); },
  /** The variable's value, or null when it is unset. */
  getVariable: (k) => call('getVariable', { key: key(k) }),
  setVariable: (k, v) => { call('setVariable', { key: key(k), value: v === undefined ? null : v }); },
  deleteVariable: (k) => { call('deleteVariable', { key: key(k) }); },
  /** Every variable as an object of key -> value. */
  listVariables: () => call('listVariables') ?? {},
  /** Add by (default 1) to a numeric variable; returns the new value. */
  increment: (k, by = 1) => {
    if (typeof by !== 'number') throw new TypeError(`cronium: increment needs a number, not ${typeof by}`);
    return call('increment', { key: key(k), value: by });
  },
  setCondition: (flag) => {
    if (typeof flag !== 'boolean') throw new TypeError(`cronium: setCondition needs a boolean, not ${typeof flag}`);
    call('setCondition', { value: flag });
  },
  getCondition: () => call('getCondition') === true,
  /** The event and execution metadata (id, name, executionId, attempt, limits, ...). */
  event: () => call('event') ?? {},
};
