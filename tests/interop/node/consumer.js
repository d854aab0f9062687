'use strict';
// ali-ons 3.12.0 push consumer scenario.
//
// Subscribes --topic with --sub (e.g. "TagA || TagB") in clustering or
// broadcasting mode and prints every delivered message as {"event":"msg",...}:
// topic, body, keys, tags, user props, msgId (ali-ons: the offset msgId decoded
// from the record's store host + commit-log offset), queueId, queueOffset,
// reconsumeTimes. ali-ons has no orderly consumer: it consumes each queue in
// offset order, --parallel (default 1) messages at a time, so with 1 the
// per-queue order is kept without LOCK_BATCH_MQ.
//
// Messages tagged --ignore-tag (default Warmup) are printed as "ignored" and not
// counted. {"event":"queues","queueIds":[...]} after each rebalance that changed
// this consumer's queues. Stops when --expect N > 0 distinct keys arrived (after
// --linger-ms more), when stdin reaches EOF, or at --timeout-ms (exit 3). On
// leaving: optional --commit-wait-ms after the last delivery, then
// consumer.close() (persists offsets with UPDATE_CONSUMER_OFFSET, unregisters),
// then {"event":"done"}.
//
// Retries (clustering only): --fail-times N makes the handler throw while
// msg.reconsumeTimes < N, --fail-always always; ali-ons then sends the message
// back (CONSUMER_SEND_MSG_BACK, delayLevel 0 = the broker's 3 + reconsumeTimes).
// It throws rather than returning Consumer.ACTION_RETRY: ali-ons' handler for
// %RETRY%<group> drops the user handler's return value, so ACTION_RETRY only
// works on a first delivery. --max-reconsume-times M sets ali-ons'
// maxReconsumeTimes (default 16; sent in the send-back header). Each "msg"
// event also carries recvMs (Date.now() on arrival), storeMs (the record's
// store timestamp), bornMs, offsetMsgId (= msgId, ali-ons' offset msgId),
// retryTopic, originMsgId, sys (broker-set properties present on it) and
// status (what the handler did: CONSUME_SUCCESS or THROW). "queues" events
// also list retryQueueIds (queues of %RETRY%<group> held).
const c = require('./common');

const USAGE = 'usage: node consumer.js --namesrv 127.0.0.1:9876 --topic T --group G [--sub "TagA || TagB"] ' +
  '[--model clustering|broadcasting] [--expect N] [--linger-ms 2000] [--from default|last|first] ' +
  '[--rebalance-ms N] [--parallel 1] [--orderly] [--instance NAME] [--commit-wait-ms 0] [--ignore-tag Warmup] [--timeout-ms 60000] ' +
  '[--fail-times N | --fail-always] [--max-reconsume-times M] [--poll-ns-ms N] [--ak AK --sk SK]';
const args = c.parseOrExit({
  namesrv: null, topic: null, group: null, sub: '*', model: 'clustering', expect: 0, lingerMs: 2000,
  from: 'default', rebalanceMs: 0, parallel: 1, commitWaitMs: 0, ignoreTag: 'Warmup', timeoutMs: 60000,
  orderly: false, instance: '', pollNsMs: 0, failTimes: 0, failAlways: false, maxReconsumeTimes: 0,
  ak: '', sk: '',
}, USAGE);
const SYS_PROPS = [ 'RETRY_TOPIC', 'ORIGIN_MESSAGE_ID', 'DELAY', '__STARTDELIVERTIME', 'TIMER_DELIVER_MS',
  'TIMER_DELAY_SEC', 'REAL_TOPIC', 'REAL_QID', 'MAX_RECONSUME_TIMES', 'RECONSUME_TIME', 'TRAN_MSG', 'PGROUP',
  'DLQ_ORIGIN_TOPIC', 'DLQ_ORIGIN_MESSAGE_ID' ];
if (![ 'clustering', 'broadcasting' ].includes(args.model)) {
  c.emit({ event: 'error', stage: 'args', error: `bad --model ${args.model}` });
  process.exit(2);
}
c.startWatchdog(args.timeoutMs, 'consumer');
const { Consumer } = c.loadAliOns();

async function main() {
  const options = {
    httpclient: {}, // required by ali-ons even with nameSrv set; never used then
    nameSrv: args.namesrv,
    consumerGroup: args.group,
    isBroadcast: args.model === 'broadcasting',
    clientIP: '127.0.0.1',
    parallelConsumeLimit: args.orderly ? 1 : args.parallel,
    logger: c.clientLogger,
  };
  if (args.ak) Object.assign(options, { accessKeyId: args.ak, accessKeySecret: args.sk }); // ACL account
  if (args.from === 'last') options.consumeFromWhere = 'CONSUME_FROM_LAST_OFFSET';
  if (args.from === 'first') options.consumeFromWhere = 'CONSUME_FROM_FIRST_OFFSET';
  if (args.rebalanceMs > 0) options.rebalanceInterval = args.rebalanceMs;
  if (args.maxReconsumeTimes > 0) options.maxReconsumeTimes = args.maxReconsumeTimes;
  // Route poll (ali-ons spells the option "Inteval"; default 30 s). A fresh group's
  // %RETRY%<group> only exists once the broker saw the group's first heartbeat,
  // which ali-ons sends after its first route lookups: it finds that route at
  // its next poll.
  if (args.pollNsMs > 0) options.pollNameServerInteval = args.pollNsMs;
  // clientId is clientIP@instanceName; ali-ons replaces DEFAULT by the pid only in
  // clustering mode, so two broadcasting consumers on one host share a clientId.
  if (args.instance) options.instanceName = args.instance;
  const consumer = new Consumer(options);
  consumer.on('error', err => c.log(`[consumer error] ${err.name}: ${err.message}`));

  const seen = new Map();
  let deliveries = 0;
  let lastAt = null;
  let completeAt = null;
  let stop = false;

  const retryTopic = `%RETRY%${args.group}`;
  const queuesChanged = () => {
    const queueIds = [];
    const retryQueueIds = [];
    for (const v of consumer.processQueueTable.values()) {
      const id = `${v.messageQueue.brokerName}:${v.messageQueue.queueId}`;
      if (v.messageQueue.topic === args.topic) queueIds.push(id);
      if (v.messageQueue.topic === retryTopic) retryQueueIds.push(id);
    }
    c.emit({ event: 'queues', queueIds: queueIds.sort(), retryQueueIds: retryQueueIds.sort() });
  };
  consumer.on(`topic_${args.topic}_queue_changed`, queuesChanged);
  consumer.on(`topic_${retryTopic}_queue_changed`, queuesChanged);

  await consumer.ready();
  consumer.subscribe(args.topic, args.sub, async msg => {
    const recvMs = Date.now();
    const props = {};
    for (const name of c.USER_PROPS) {
      if (msg.properties && msg.properties[name]) props[name] = msg.properties[name];
    }
    const rec = {
      topic: msg.topic,
      body: msg.body ? msg.body.toString('utf8') : null,
      keys: msg.keys || null,
      tags: msg.tags || null,
      props,
      uniqKey: (msg.properties && msg.properties.UNIQ_KEY) || null,
      msgId: msg.msgId,
      queueId: msg.queueId,
      queueOffset: msg.queueOffset,
      reconsumeTimes: msg.reconsumeTimes,
    };
    const sys = {};
    for (const name of SYS_PROPS) {
      if (msg.properties && msg.properties[name] !== undefined) sys[name] = String(msg.properties[name]);
    }
    const fail = args.failAlways || msg.reconsumeTimes < args.failTimes;
    Object.assign(rec, {
      recvMs, storeMs: msg.storeTimestamp, bornMs: msg.bornTimestamp, offsetMsgId: msg.msgId,
      retryTopic: msg.retryTopic || null, originMsgId: msg.originMessageId || null, sys,
      status: fail && rec.tags !== args.ignoreTag ? 'THROW' : 'CONSUME_SUCCESS',
    });
    if (args.ignoreTag && rec.tags === args.ignoreTag) {
      c.emit(Object.assign({ event: 'ignored' }, rec));
      return;
    }
    c.emit(Object.assign({ event: 'msg' }, rec));
    deliveries++;
    lastAt = Date.now();
    seen.set(rec.keys, (seen.get(rec.keys) || 0) + 1);
    if (args.expect > 0 && seen.size >= args.expect && completeAt === null) {
      completeAt = Date.now();
      c.emit({ event: 'complete', distinct: seen.size });
    }
    if (fail) throw new Error(`scenario: fail ${rec.keys} (reconsumeTimes ${msg.reconsumeTimes})`);
  });
  c.emit({ event: 'started', model: args.model, sub: args.sub });

  process.stdin.on('end', () => { stop = true; });
  process.stdin.on('error', () => { stop = true; });
  process.stdin.resume();

  while (!stop && !(completeAt !== null && Date.now() - completeAt >= args.lingerMs)) {
    await new Promise(r => setTimeout(r, 50));
  }
  if (args.commitWaitMs > 0 && lastAt !== null) {
    const left = args.commitWaitMs - (Date.now() - lastAt);
    if (left > 0) await new Promise(r => setTimeout(r, left));
  }
  c.emit({ event: 'done', distinct: seen.size, deliveries });
  try {
    await consumer.close();
    c.emit({ event: 'shutdown' });
  } catch (err) {
    c.log(`consumer close: ${err.message}`);
  }
  process.exit(0);
}

main().catch(err => {
  c.emit({ event: 'error', stage: 'start', error: `${err.name}: ${err.message}` });
  process.exit(1);
});
