'use strict';
/*
 * The 5.x gRPC Node.js client (rocketmq-client-nodejs 1.0.8, from npm,
 * unmodified) end to end, in one process:
 *
 *   node grpc_scenario.js --endpoint HOST:PORT --topic T --group G [--count 10]
 *        [--delay-ms 3000] [--linger-ms 14000] [--timeout-ms 120000]
 *
 * A producer sends --count normal messages (keys n0.., tag TagA), one
 * `nack-me`, one FIFO message (message group `group-1`), one delayed by
 * --delay-ms, two transactional ones (tx-commit committed, tx-rollback
 * rolled back) and two left open (tx-orphan-commit, tx-orphan-rollback: the
 * broker must recover them over Telemetry, and the checker answers as the
 * key says); then a SimpleConsumer receives with invisible time 10 s and
 * acks everything except `nack-me` on its first delivery (it must come
 * back), until --linger-ms after the last delivery.
 *
 * JSON lines on stdout, the events of the Java program `grpc` of
 * tests/interop/java5 (GrpcScenario.java): sent {key, id, atMs}, delay
 * {dueMs}, checked {key, id, atMs}, received {key, id, tag, attempt, recvMs,
 * body, group}, acked {key}, ack-error, receive-error, error, done. The
 * client's own log goes to stderr (warnings and errors; everything with
 * SHARDMQ_NODE_CLIENT_LOG=info).
 *
 * The package is found through NODE_PATH (target/interop/node5/node_modules,
 * installed by scripts/setup-interop.sh).
 */

const util = require('node:util');
const { Producer, SimpleConsumer } = require('rocketmq-client-nodejs');
// Not re-exported by the package's index: the generated protobuf module.
const { TransactionResolution } = require('rocketmq-client-nodejs/proto/apache/rocketmq/v2/definition_pb');

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function describe(e) {
  if (e && e.stack) return String(e.stack).split('\n').slice(0, 3).join(' | ');
  return String(e);
}

/** Writes the whole line to stdout, then exits (stdout may be a pipe). */
function exit(code) {
  process.stdout.write('', () => process.exit(code));
}

function fail(stage, e) {
  emit({ event: 'error', stage, error: describe(e) });
  exit(1);
}

function parseArgs(argv) {
  const o = {
    endpoint: null, topic: null, group: null, count: '10',
    'delay-ms': '3000', 'linger-ms': '14000', 'timeout-ms': '120000',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in o) || i + 1 >= argv.length) {
      emit({ event: 'error', stage: 'args', error: `unknown or incomplete option ${argv[i]}` });
      process.exit(2);
    }
    o[k] = argv[i + 1];
  }
  for (const k of [ 'endpoint', 'topic', 'group' ]) {
    if (!o[k]) {
      emit({ event: 'error', stage: 'args', error: `--${k} is required` });
      process.exit(2);
    }
  }
  for (const k of [ 'count', 'delay-ms', 'linger-ms', 'timeout-ms' ]) {
    o[k] = Number(o[k]);
  }
  return o;
}

/** The client's logger (its default one writes ~/logs/rocketmq). */
function stderrLogger() {
  const all = process.env.SHARDMQ_NODE_CLIENT_LOG === 'info';
  const line = level => (...args) => {
    process.stderr.write(`${new Date().toISOString()} ${level} ${util.format(...args)}\n`);
  };
  const quiet = () => {};
  return {
    info: all ? line('INFO') : quiet,
    debug: all ? line('DEBUG') : quiet,
    warn: line('WARN'),
    error: line('ERROR'),
  };
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

async function main() {
  const o = parseArgs(process.argv.slice(2));
  setTimeout(() => {
    emit({ event: 'error', stage: 'watchdog', error: `timed out after ${o['timeout-ms']} ms` });
    exit(3);
  }, o['timeout-ms']).unref();
  const topic = o.topic;
  const logger = stderrLogger();
  const common = { endpoints: o.endpoint, namespace: '', sslEnabled: false, requestTimeout: 5000, logger };

  const producer = new Producer({
    ...common,
    topics: [ topic ],
    // Asked by the broker (RecoverOrphanedTransactionCommand on the
    // Telemetry stream) about the transactions left open.
    checker: {
      check: async view => {
        const key = view.keys.length > 0 ? view.keys[0] : '';
        emit({ event: 'checked', key, id: view.messageId, atMs: Date.now() });
        return key === 'tx-orphan-commit' ? TransactionResolution.COMMIT : TransactionResolution.ROLLBACK;
      },
    },
  });
  try {
    await producer.startup();
  } catch (e) {
    return fail('producer-start', e);
  }
  const message = (key, body, extra) => ({
    topic, tag: 'TagA', keys: [ key ], body: Buffer.from(body), ...extra,
  });
  const send = async (key, body, extra, tx) => {
    const r = await producer.send(message(key, body, extra), tx);
    emit({ event: 'sent', key, id: r.messageId, atMs: Date.now() });
  };
  try {
    for (let i = 0; i < o.count; i++) {
      await send(`n${i}`, `body-${i}`);
    }
    await send('nack-me', 'again');
    await send('fifo', 'fifo', { messageGroup: 'group-1' });
    // A Date: the client sends it as a protobuf Timestamp with milliseconds
    // (Timestamp.fromDate), unlike the Python client's whole seconds.
    const due = Date.now() + o['delay-ms'];
    emit({ event: 'delay', dueMs: due });
    await send('delayed', 'later', { deliveryTimestamp: new Date(due) });
    for (const key of [ 'tx-commit', 'tx-rollback', 'tx-orphan-commit', 'tx-orphan-rollback' ]) {
      const tx = producer.beginTransaction();
      await send(key, key, undefined, tx);
      if (key === 'tx-commit') {
        await tx.commit();
      } else if (key === 'tx-rollback') {
        await tx.rollback();
      } // the orphans stay open: the broker asks the checker
    }
  } catch (e) {
    return fail('send', e);
  }

  const consumer = new SimpleConsumer({
    ...common,
    consumerGroup: o.group,
    subscriptions: new Map([[ topic, '*' ]]),
    awaitDuration: 5000,
  });
  try {
    await consumer.startup();
  } catch (e) {
    return fail('consumer-start', e);
  }
  const nacked = new Set();
  let lastNew = Date.now();
  while (Date.now() - lastNew < o['linger-ms']) {
    let views;
    try {
      views = await consumer.receive(16, 10000);
    } catch (e) {
      emit({ event: 'receive-error', error: describe(e) });
      await sleep(200);
      continue;
    }
    // When the batch arrived, not after the acks of the messages before it
    // in the batch: the check times nack-me's re-delivery from it.
    const recvMs = Date.now();
    for (const v of views) {
      const key = v.keys.length > 0 ? v.keys[0] : '';
      emit({
        event: 'received', key, id: v.messageId, tag: v.tag || '', attempt: v.deliveryAttempt,
        body: v.body.toString('utf8'), recvMs, group: v.messageGroup || '',
      });
      lastNew = Date.now();
      if (v.corrupted) {
        // The client compares the body with the broker's body digest.
        emit({ event: 'error', stage: 'receive', error: `${key}: body digest mismatch (corrupted)` });
      }
      if (key === 'nack-me' && !nacked.has(key)) {
        nacked.add(key);
        continue; // not acked: must come back after the invisible time
      }
      try {
        await consumer.ack(v);
        emit({ event: 'acked', key });
      } catch (e) {
        emit({ event: 'ack-error', key, error: describe(e) });
      }
    }
  }
  emit({ event: 'done' });
  // Bounded: shutdown notifies every endpoint and must not hold the exit.
  await Promise.race([
    Promise.allSettled([ consumer.shutdown(), producer.shutdown() ]),
    sleep(3000),
  ]);
  exit(0);
}

main().catch(e => fail('main', e));
