package shardmq.interop;

import shardmq.interop.common.Common;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.ConsumeOrderlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.consumer.listener.MessageListenerOrderly;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.common.protocol.heartbeat.MessageModel;

/**
 * Java (rocketmq-client 4.9.x) push consumer scenario.
 *
 * <p>Subscribes --topic with --sub (e.g. "TagA || TagB") in clustering or
 * broadcasting mode, concurrently or --orderly (MessageListenerOrderly:
 * LOCK_BATCH_MQ, one queue at a time), and prints every delivered message as
 * {"event":"msg",...}: topic, body, keys, tags, user props, msgId (Java: the
 * UNIQ_KEY), offsetMsgId, uniqKey, queueId and queueOffset of the stored record,
 * reconsumeTimes, and brokerName + mqQueueId of the MessageQueue it was pulled
 * from. {"event":"queues","queueIds":[...],"retryQueueIds":[...]} whenever this
 * consumer's queue set of --topic or of its retry topic %RETRY%&lt;group&gt; changed
 * (polled from the rebalance's process-queue table).
 *
 * <p>Every "msg" event also has recvMs (System.currentTimeMillis() when the
 * listener got it), retryTopic / originMsgId (the RETRY_TOPIC / ORIGIN_MESSAGE_ID
 * properties, null when absent), sys (the broker-set properties of
 * {@link #SYS_PROPS} that are present) and status, what the listener answered.
 *
 * <p>Retries (concurrent listener only): --reconsume-later N answers
 * RECONSUME_LATER while msg.getReconsumeTimes() &lt; N, then CONSUME_SUCCESS;
 * --reconsume-later-always always answers RECONSUME_LATER (the message ends in
 * %DLQ%&lt;group&gt;); --max-reconsume-times M sets consumer.setMaxReconsumeTimes(M).
 * The listener takes one message at a time (consumeMessageBatchMaxSize 1, the
 * default), so the answer is per message.
 *
 * <p>Messages tagged --ignore-tag (default Warmup) are printed as "ignored",
 * always answered CONSUME_SUCCESS and not counted. Stops when --expect N &gt; 0
 * distinct keys arrived (after --linger-ms more), when stdin reaches EOF, or at
 * --timeout-ms (exit 3). On leaving: optional --commit-wait-ms after the last
 * delivery, {"event":"done"},
 * then shutdown() (persists offsets with UPDATE_CONSUMER_OFFSET, unregisters)
 * and {"event":"shutdown"} unless --no-shutdown.
 */
final class ConsumerScenario {
    private static final String USAGE = "usage: consumer --namesrv 127.0.0.1:9876 --topic T --group G [--sub \"TagA || TagB\"] "
        + "[--model clustering|broadcasting] [--expect N] [--linger-ms 2000] [--from default|last|first] "
        + "[--rebalance-ms N] [--threads N] [--orderly] [--instance NAME] [--commit-wait-ms 0] "
        + "[--ignore-tag Warmup] [--no-shutdown] [--timeout-ms 60000] "
        + "[--reconsume-later N | --reconsume-later-always] [--max-reconsume-times M]";

    /** Broker-set properties reported in the "sys" map of a "msg" event. */
    static final String[] SYS_PROPS = {"RETRY_TOPIC", "ORIGIN_MESSAGE_ID", "DELAY", "TIMER_DELIVER_MS",
        "TIMER_DELAY_SEC", "TIMER_DELAY_MS", "TIMER_OUT_MS", "REAL_TOPIC", "REAL_QID", "MAX_RECONSUME_TIMES",
        "RECONSUME_TIME", "TRAN_MSG", "PGROUP", "__transactionId__", "TRANSACTION_CHECK_TIMES",
        "DLQ_ORIGIN_TOPIC", "DLQ_ORIGIN_MESSAGE_ID"};

    static void main(String[] argv) throws Exception {
        Common.Opts o = new Common.Opts(USAGE, argv, Common.spec(
            "namesrv", null, "topic", null, "group", null, "sub", "*", "model", "clustering", "expect", "0",
            "linger-ms", "2000", "from", "default", "rebalance-ms", "0", "threads", "0", "instance", "",
            "commit-wait-ms", "0", "ignore-tag", "Warmup", "timeout-ms", "60000", "reconsume-later", "0",
            "max-reconsume-times", "-1"), "orderly", "no-shutdown", "reconsume-later-always");
        Common.startWatchdog(o.num("timeout-ms"), "consumer");
        String topic = o.str("topic");
        long expect = o.num("expect");
        if (o.num("rebalance-ms") > 0) {
            // Read once when RebalanceService is loaded (default 20 s).
            System.setProperty("rocketmq.client.rebalance.waitInterval", o.str("rebalance-ms"));
        }
        DefaultMQPushConsumer consumer = new DefaultMQPushConsumer(o.str("group"));
        consumer.setNamesrvAddr(o.str("namesrv"));
        consumer.setVipChannelEnabled(false);
        switch (o.str("model")) {
            case "clustering":
                consumer.setMessageModel(MessageModel.CLUSTERING);
                break;
            case "broadcasting":
                consumer.setMessageModel(MessageModel.BROADCASTING);
                break;
            default:
                Common.emit(Common.obj("event", "error", "stage", "args", "error", "bad --model " + o.str("model")));
                Common.halt(2);
        }
        switch (o.str("from")) {
            case "last":
                consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET);
                break;
            case "first":
                consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
                break;
            default:
                break;
        }
        if (o.integer("threads") > 0) {
            consumer.setConsumeThreadMin(o.integer("threads"));
            consumer.setConsumeThreadMax(o.integer("threads"));
        }
        if (!o.str("instance").isEmpty()) {
            consumer.setInstanceName(o.str("instance"));
        }
        if (o.integer("max-reconsume-times") >= 0) {
            consumer.setMaxReconsumeTimes(o.integer("max-reconsume-times"));
        }
        long reconsumeLater = o.num("reconsume-later");
        boolean reconsumeAlways = o.flag("reconsume-later-always");
        String retryTopic = "%RETRY%" + o.str("group");
        String ignoreTag = o.str("ignore-tag");
        Map<String, Integer> seen = new ConcurrentHashMap<>();
        AtomicLong deliveries = new AtomicLong();
        AtomicLong lastAt = new AtomicLong(0);
        AtomicLong completeAt = new AtomicLong(0);
        Object lock = new Object();

        // Returns true when the listener should answer RECONSUME_LATER for m.
        java.util.function.BiFunction<MessageExt, MessageQueue, Boolean> onMessage = (m, mq) -> {
            long recvMs = System.currentTimeMillis();
            Map<String, Object> props = new java.util.TreeMap<>();
            for (String name : Common.USER_PROPS) {
                String v = m.getUserProperty(name);
                if (v != null && !v.isEmpty()) {
                    props.put(name, v);
                }
            }
            Map<String, Object> rec = Common.obj(
                "topic", m.getTopic(),
                "body", m.getBody() == null ? null : new String(m.getBody(), StandardCharsets.UTF_8),
                "keys", m.getKeys(),
                "tags", m.getTags(),
                "props", props,
                "uniqKey", m.getProperty("UNIQ_KEY"),
                "msgId", m.getMsgId(),
                "offsetMsgId", m instanceof org.apache.rocketmq.common.message.MessageClientExt
                    ? ((org.apache.rocketmq.common.message.MessageClientExt) m).getOffsetMsgId() : null,
                "queueId", m.getQueueId(),
                "queueOffset", m.getQueueOffset(),
                "reconsumeTimes", m.getReconsumeTimes(),
                "brokerName", mq == null ? null : mq.getBrokerName(),
                "mqQueueId", mq == null ? null : mq.getQueueId(),
                "recvMs", recvMs,
                "storeMs", m.getStoreTimestamp(),
                "retryTopic", m.getProperty("RETRY_TOPIC"),
                "originMsgId", m.getProperty("ORIGIN_MESSAGE_ID"));
            Map<String, Object> sys = new java.util.TreeMap<>();
            for (String name : SYS_PROPS) {
                String v = m.getProperty(name);
                if (v != null) {
                    sys.put(name, v);
                }
            }
            rec.put("sys", sys);
            if (ignoreTag != null && !ignoreTag.isEmpty() && ignoreTag.equals(m.getTags())) {
                rec.put("event", "ignored");
                Common.emit(rec);
                return false;
            }
            boolean later = reconsumeAlways || m.getReconsumeTimes() < reconsumeLater;
            rec.put("event", "msg");
            rec.put("status", later ? "RECONSUME_LATER" : "CONSUME_SUCCESS");
            Common.emit(rec);
            synchronized (lock) {
                deliveries.incrementAndGet();
                lastAt.set(System.currentTimeMillis());
                seen.merge(String.valueOf(m.getKeys()), 1, Integer::sum);
                if (expect > 0 && seen.size() >= expect && completeAt.get() == 0) {
                    completeAt.set(System.currentTimeMillis());
                    Common.emit(Common.obj("event", "complete", "distinct", seen.size()));
                }
            }
            return later;
        };

        try {
            consumer.subscribe(topic, o.str("sub"));
            if (o.flag("orderly")) {
                if (reconsumeAlways || reconsumeLater > 0) {
                    Common.emit(Common.obj("event", "error", "stage", "args",
                        "error", "--reconsume-later* needs a concurrent listener (no --orderly)"));
                    Common.halt(2);
                }
                consumer.registerMessageListener((MessageListenerOrderly) (msgs, ctx) -> {
                    for (MessageExt m : msgs) {
                        onMessage.apply(m, ctx.getMessageQueue());
                    }
                    return ConsumeOrderlyStatus.SUCCESS;
                });
            } else {
                consumer.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
                    boolean later = false;
                    for (MessageExt m : msgs) {
                        later |= onMessage.apply(m, ctx.getMessageQueue());
                    }
                    return later ? ConsumeConcurrentlyStatus.RECONSUME_LATER : ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
                });
            }
            consumer.start();
        } catch (Exception e) {
            Common.fail("start", e);
        }
        Common.emit(Common.obj("event", "started", "model", o.str("model"), "orderly", o.flag("orderly"), "sub", o.str("sub")));

        Thread queues = new Thread(() -> {
            Set<String> last = null;
            Set<String> lastRetry = null;
            while (true) {
                Set<String> now = new TreeSet<>();
                Set<String> retry = new TreeSet<>();
                try {
                    for (MessageQueue mq : consumer.getDefaultMQPushConsumerImpl().getRebalanceImpl()
                        .getProcessQueueTable().keySet()) {
                        if (mq.getTopic().equals(topic)) {
                            now.add(ProducerScenario.name(mq));
                        } else if (mq.getTopic().equals(retryTopic)) {
                            retry.add(ProducerScenario.name(mq));
                        }
                    }
                } catch (RuntimeException e) {
                    Common.log("queue poll: " + e);
                }
                if (!now.equals(last) || !retry.equals(lastRetry)) {
                    Common.emit(Common.obj("event", "queues", "queueIds", List.copyOf(now),
                        "retryQueueIds", List.copyOf(retry)));
                    last = now;
                    lastRetry = retry;
                }
                ProducerScenario.sleep(100);
            }
        }, "queue-poll");
        queues.setDaemon(true);
        queues.start();

        Object stdinDone = new Object();
        boolean[] eof = {false};
        Thread stdin = new Thread(() -> {
            byte[] buf = new byte[4096];
            try {
                while (System.in.read(buf) >= 0) {
                    // discard
                }
            } catch (Exception e) {
                // treat as EOF
            }
            synchronized (stdinDone) {
                eof[0] = true;
                stdinDone.notifyAll();
            }
        }, "stdin-watch");
        stdin.setDaemon(true);
        stdin.start();

        long linger = o.num("linger-ms");
        while (true) {
            synchronized (stdinDone) {
                if (eof[0]) {
                    break;
                }
                long c = completeAt.get();
                if (c != 0 && System.currentTimeMillis() - c >= linger) {
                    break;
                }
                stdinDone.wait(50);
            }
        }
        long commitWait = o.num("commit-wait-ms");
        if (commitWait > 0 && lastAt.get() != 0) {
            long left = commitWait - (System.currentTimeMillis() - lastAt.get());
            if (left > 0) {
                Thread.sleep(left);
            }
        }
        Common.emit(Common.obj("event", "done", "distinct", seen.size(), "deliveries", deliveries.get()));
        if (!o.flag("no-shutdown")) {
            try {
                consumer.shutdown();
                Common.emit(Common.obj("event", "shutdown"));
            } catch (Exception e) {
                Common.log("consumer shutdown: " + e);
            }
        }
        Common.halt(0);
    }
}
