'use strict';
// Loaded by NODE_OPTIONS=--require: makes the runtime helpers the global
// `cronium`, so scripts need no require line. Never breaks start-up.
try {
  if (globalThis.cronium === undefined) globalThis.cronium = require('./cronium.js');
} catch (e) {
  // leave `cronium` undefined rather than fail the script
}
