'use strict';
// Shared helpers for the ali-ons (Node) scenario programs: argument parsing,
// JSON-lines output, watchdog, and loading ali-ons from target/interop/node.

const path = require('path');

function emit(fields) {
  const sorted = {};
  for (const k of Object.keys(fields).sort()) sorted[k] = fields[k];
  process.stdout.write(JSON.stringify(sorted) + '\n');
}

function log(msg) {
  process.stderr.write(msg + '\n');
}

// --name value / --flag (boolean when spec default is boolean).
function parseArgs(spec, argv) {
  const out = {};
  for (const [k, v] of Object.entries(spec)) out[k] = v;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const name = a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(name in spec)) throw new Error(`unknown option ${a}`);
    if (typeof spec[name] === 'boolean') {
      out[name] = true;
    } else {
      const v = argv[++i];
      if (v === undefined) throw new Error(`option ${a} needs a value`);
      out[name] = typeof spec[name] === 'number' ? Number(v) : v;
      if (typeof spec[name] === 'number' && !Number.isFinite(out[name])) throw new Error(`option ${a}: not a number: ${v}`);
    }
  }
  for (const [k, v] of Object.entries(out)) {
    if (v === null) throw new Error(`--${k.replace(/[A-Z]/g, c => '-' + c.toLowerCase())} is required`);
  }
  return out;
}

function parseOrExit(spec, usage) {
  try {
    return parseArgs(spec, process.argv.slice(2));
  } catch (err) {
    log(`${err.message}\n${usage}`);
    emit({ event: 'error', stage: 'args', error: err.message });
    process.exit(2);
  }
}

function startWatchdog(timeoutMs, what) {
  const t = setTimeout(() => {
    emit({ event: 'timeout', what, timeoutMs });
    log(`${what}: watchdog fired after ${timeoutMs} ms`);
    process.exit(3);
  }, timeoutMs);
  return t;
}

function loadAliOns() {
  const candidates = [];
  if (process.env.SHARDMQ_ALIONS) candidates.push(process.env.SHARDMQ_ALIONS);
  candidates.push('ali-ons');
  candidates.push(path.join(__dirname, '..', '..', '..', 'target', 'interop', 'node', 'node_modules', 'ali-ons'));
  const errors = [];
  for (const c of candidates) {
    try {
      return require(c);
    } catch (err) {
      errors.push(`${c}: ${err.message.split('\n')[0]}`);
    }
  }
  emit({ event: 'error', stage: 'import', error: `cannot load ali-ons (run scripts/setup-interop.sh): ${errors.join('; ')}` });
  process.exit(1);
}

// ali-ons logs info/debug nowhere and warn/error to the console; keep stdout
// for JSON by sending everything to stderr.
const clientLogger = {
  info() {},
  debug() {},
  warn(...args) { console.error('[ali-ons warn]', ...args); },
  error(...args) { console.error('[ali-ons error]', ...args); },
};

// Queue index ali-ons 3.12.0 derives from a sharding key (topic_publish_info.js).
function shardingIndex(key, queueCount) {
  return require('crypto').createHash('md5').update(key).digest().readUInt32BE() % queueCount;
}

const USER_PROPS = [ 'seq', 'prefix', 'color', 'orderKey', 'orderSeq' ];

module.exports = { emit, log, parseOrExit, startWatchdog, loadAliOns, clientLogger, shardingIndex, USER_PROPS };
