package shardmq.interop;

import shardmq.interop.common.Common;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.rocketmq.client.hook.SendMessageContext;
import org.apache.rocketmq.client.hook.SendMessageHook;
import org.apache.rocketmq.client.impl.producer.TopicPublishInfo;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageAccessor;
import org.apache.rocketmq.common.message.MessageQueue;

/**
 * Java (rocketmq-client 4.9.x) producer scenario.
 *
 * <p>Sends --count messages numbered --start .. --start+count-1. Message i has
 * key = &lt;prefix&gt;-k&lt;i&gt;, tag = tags[i % tags.length], body = "&lt;prefix&gt; body #&lt;i&gt; ✓",
 * props seq=&lt;i&gt;, prefix=&lt;prefix&gt;, color="blue green" (+ orderKey, orderSeq =
 * i / orderKeys in --mode orderly).
 *
 * <p>Modes: sync (send), oneway (sendOneway), batch (send(Collection), --batch-size
 * per batch, SEND_BATCH_MESSAGE), orderly (send(msg, selector, orderKey): queue =
 * floorMod(orderKey.hashCode(), queues)), every-queue (auto-create check, see
 * {@link #everyQueue}). The topic is never created here: a new topic is
 * auto-created by the broker through the TBW102 route, as Java does.
 *
 * <p>Delayed messages (--mode sync): --delay-level L sets Message.setDelayTimeLevel(L) (property
 * DELAY); --deliver-at-ms-from-now D sets property TIMER_DELIVER_MS = now + D
 * (absolute ms, "now" taken just before that message's send), --delay-sec S
 * property TIMER_DELAY_SEC = S, --delay-ms D property TIMER_DELAY_MS = D. 4.9.x has
 * no setDeliverTimeMs / setDelayTimeSec: the properties are put with
 * MessageAccessor.putProperty, as 5.x clients put them on the wire. Each "sent"
 * event carries sendStartMs / sendEndMs (System.currentTimeMillis() just before
 * and just after send()) and deliverAtMs when TIMER_DELIVER_MS was set.
 *
 * <p>Output (JSON lines): {"event":"started"}, one {"event":"sent",...} per message
 * with msgId (the client's UNIQ_KEY), offsetMsgId (the broker's), queueId
 * ("brokerName:queueId" of the SendResult's queue), brokerName, qid, queueOffset,
 * status; {"event":"batch_sent"} per batch; {"event":"done","sent":n}; on failure
 * {"event":"error",...} and exit code 1.
 *
 * <p>--mode continuous (failover tests): sends messages start.. one at a time with
 * send(), --interval-ms apart, until --count were tried or stdin reaches EOF. A
 * send that throws is reported as {"event":"send_failed","i","key","error"} and
 * the next message follows; a send that returns is a "sent" event (with its
 * status, which may be other than SEND_OK). Both carry attempts, how many times
 * the client put the message on the wire (a SendMessageHook counts them: 1 +
 * the client's own retries on another queue), and sendStartMs / sendEndMs.
 * --poll-namesrv-ms N sets setPollNameServerInterval(N) (route refresh, default
 * 30 s) and --retry-times N setRetryTimesWhenSendFailed(N); both are left at the
 * client's defaults unless given, in every mode.
 */
final class ProducerScenario {
    private static final String USAGE = "usage: producer --namesrv 127.0.0.1:9876 --topic T --group G --count N "
        + "[--start 0] [--prefix m] [--tags TagA,TagB,TagC] [--mode sync|oneway|batch|orderly|every-queue] "
        + "[--order-keys 4] [--batch-size 10] [--rounds 2] [--default-topic-queue-nums 4] "
        + "[--send-timeout-ms 5000] [--timeout-ms 60000] [--delay-level L] [--deliver-at-ms-from-now D] "
        + "[--delay-sec S] [--delay-ms D] [--interval-ms 0] [--poll-namesrv-ms N] [--retry-times N]";

    private final Common.Opts o;
    private final String[] tags;
    private final String prefix;
    private final String topic;
    private DefaultMQProducer producer;
    private int sent;

    private ProducerScenario(Common.Opts o) {
        this.o = o;
        this.tags = o.str("tags").split(",");
        this.prefix = o.str("prefix");
        this.topic = o.str("topic");
    }

    static void main(String[] argv) {
        Common.Opts o = new Common.Opts(USAGE, argv, Common.spec(
            "namesrv", null, "topic", null, "group", null, "count", "0", "start", "0", "prefix", "m",
            "tags", "TagA,TagB,TagC", "mode", "sync", "order-keys", "4", "batch-size", "10", "rounds", "2",
            "default-topic-queue-nums", "4", "send-timeout-ms", "5000", "timeout-ms", "60000", "delay-level", "0",
            "deliver-at-ms-from-now", "0", "delay-sec", "0", "delay-ms", "0", "interval-ms", "0", "poll-namesrv-ms", "0",
            "retry-times", "-1"));
        String mode = o.str("mode");
        if (!List.of("sync", "oneway", "batch", "orderly", "every-queue", "continuous").contains(mode)) {
            Common.emit(Common.obj("event", "error", "stage", "args", "error", "bad --mode " + mode));
            Common.halt(2);
        }
        Common.startWatchdog(o.num("timeout-ms"), "producer");
        new ProducerScenario(o).run(mode);
    }

    private void run(String mode) {
        producer = new DefaultMQProducer(o.str("group"));
        producer.setNamesrvAddr(o.str("namesrv"));
        producer.setVipChannelEnabled(false);
        producer.setSendMsgTimeout(o.integer("send-timeout-ms"));
        producer.setDefaultTopicQueueNums(o.integer("default-topic-queue-nums"));
        if (mode.equals("every-queue")) {
            // No silent retry on another queue: every send must succeed where it was aimed.
            producer.setRetryTimesWhenSendFailed(0);
        }
        if (o.num("poll-namesrv-ms") > 0) {
            producer.setPollNameServerInterval(o.integer("poll-namesrv-ms"));
        }
        if (o.num("retry-times") >= 0) {
            producer.setRetryTimesWhenSendFailed(o.integer("retry-times"));
        }
        AtomicInteger attempts = new AtomicInteger();
        if (mode.equals("continuous")) {
            producer.getDefaultMQProducerImpl().registerSendMessageHook(new SendMessageHook() {
                @Override
                public String hookName() {
                    return "attempts";
                }

                @Override
                public void sendMessageBefore(SendMessageContext context) {
                    attempts.incrementAndGet();
                }

                @Override
                public void sendMessageAfter(SendMessageContext context) {
                }
            });
        }
        try {
            producer.start();
        } catch (Exception e) {
            Common.fail("start", e);
        }
        Common.emit(Common.obj("event", "started", "mode", mode));
        long start = o.num("start");
        long count = o.num("count");
        try {
            switch (mode) {
                case "sync":
                    for (long i = start; i < start + count; i++) {
                        Message m = build(i, null);
                        long deliverAt = delay(m);
                        long t0 = System.currentTimeMillis();
                        SendResult r = producer.send(m);
                        long t1 = System.currentTimeMillis();
                        report(i, m, r, null, Common.obj("sendStartMs", t0, "sendEndMs", t1,
                            "deliverAtMs", deliverAt > 0 ? deliverAt : null));
                    }
                    break;
                case "oneway":
                    for (long i = start; i < start + count; i++) {
                        Message m = build(i, null);
                        producer.sendOneway(m);
                        Map<String, Object> ev = info(i, m);
                        ev.put("event", "sent");
                        ev.put("oneway", true);
                        Common.emit(ev);
                        sent++;
                    }
                    break;
                case "batch":
                    batch(start, count);
                    break;
                case "continuous":
                    continuous(start, count, attempts);
                    break;
                case "orderly":
                    int keys = o.integer("order-keys");
                    for (long i = start; i < start + count; i++) {
                        Message m = build(i, keys);
                        String okey = m.getProperty("orderKey");
                        SendResult r = producer.send(m, (mqs, msg, arg) ->
                            mqs.get(Math.floorMod(arg.hashCode(), mqs.size())), okey);
                        report(i, m, r, null);
                    }
                    break;
                default:
                    everyQueue(start);
            }
        } catch (Exception e) {
            Common.fail("send", e, "sent", sent);
        }
        if (mode.equals("oneway")) {
            sleep(1000); // oneway requests are only queued on the socket
        }
        producer.shutdown();
        Common.emit(Common.obj("event", "done", "sent", sent));
        Common.halt(0);
    }

    /**
     * Auto-create check. 1) One send to a topic that does not exist, aimed (by a
     * selector) at the last queue the client derived from the TBW102 route
     * (min(defaultTopicQueueNums, writeQueueNums) queues per broker entry):
     * the broker creates the topic. 2) --rounds
     * times one send(msg, mq) to every queue of that TBW102-derived publish
     * info ("queues" event, source "tbw102") — what the client sends to until
     * its next route refresh. 3) Waits (≤ 15 s) for the topic's own route from
     * the name server to list as many queues ("queues" event, source "route"),
     * then one send(msg, mq) to every queue of it. "sent" events carry "target",
     * the queue the client asked for.
     */
    private void everyQueue(long start) throws Exception {
        long i = start;
        Message first = build(i, null);
        MessageQueue[] chosen = new MessageQueue[1];
        SendResult r0 = producer.send(first, (mqs, msg, arg) -> {
            chosen[0] = mqs.get(mqs.size() - 1);
            return chosen[0];
        }, null);
        report(i++, first, r0, name(chosen[0]));
        TopicPublishInfo info = producer.getDefaultMQProducerImpl().getTopicPublishInfoTable().get(topic);
        List<MessageQueue> tbw = new ArrayList<>(info.getMessageQueueList());
        Common.emit(Common.obj("event", "queues", "source", "tbw102", "queues", names(tbw)));
        for (int r = 0; r < o.integer("rounds"); r++) {
            for (MessageQueue mq : tbw) {
                Message m = build(i, null);
                report(i++, m, producer.send(m, mq), name(mq));
            }
        }
        List<MessageQueue> route = new ArrayList<>();
        long deadline = System.currentTimeMillis() + 15_000;
        while (true) {
            try {
                route = new ArrayList<>(producer.fetchPublishMessageQueues(topic));
            } catch (Exception e) {
                Common.log("fetchPublishMessageQueues: " + e.getMessage());
            }
            if (route.size() >= tbw.size() || System.currentTimeMillis() > deadline) {
                break;
            }
            sleep(200);
        }
        route.sort(null);
        Common.emit(Common.obj("event", "queues", "source", "route", "queues", names(route)));
        for (MessageQueue mq : route) {
            Message m = build(i, null);
            report(i++, m, producer.send(m, mq), name(mq));
        }
    }

    /** --mode continuous (see the class comment). */
    private void continuous(long start, long count, AtomicInteger attempts) {
        AtomicBoolean eof = new AtomicBoolean();
        Thread stdin = new Thread(() -> {
            try {
                while (System.in.read() != -1) {
                    // only EOF matters
                }
            } catch (java.io.IOException e) {
                // treated as EOF
            }
            eof.set(true);
        }, "stdin-eof");
        stdin.setDaemon(true);
        stdin.start();
        long interval = o.num("interval-ms");
        for (long i = start; i < start + count && !eof.get(); i++) {
            Message m = build(i, null);
            attempts.set(0);
            long t0 = System.currentTimeMillis();
            try {
                SendResult r = producer.send(m);
                long t1 = System.currentTimeMillis();
                report(i, m, r, null, Common.obj("sendStartMs", t0, "sendEndMs", t1, "attempts", attempts.get()));
            } catch (Exception e) {
                long t1 = System.currentTimeMillis();
                Map<String, Object> ev = info(i, m);
                ev.put("event", "send_failed");
                ev.put("error", Common.describe(e));
                ev.put("attempts", attempts.get());
                ev.put("sendStartMs", t0);
                ev.put("sendEndMs", t1);
                Common.emit(ev);
            }
            if (interval > 0) {
                sleep(interval);
            }
        }
    }

    private void batch(long start, long count) throws Exception {
        int size = o.integer("batch-size");
        for (long b = start; b < start + count; b += size) {
            List<Message> msgs = new ArrayList<>();
            for (long i = b; i < Math.min(b + size, start + count); i++) {
                msgs.add(build(i, null));
            }
            SendResult r = producer.send(msgs);
            Common.emit(Common.obj("event", "batch_sent", "first", b, "count", msgs.size(), "msgId", r.getMsgId(),
                "offsetMsgId", r.getOffsetMsgId(), "queueId", name(r.getMessageQueue()),
                "queueOffset", r.getQueueOffset(), "status", r.getSendStatus().name()));
            String[] ids = r.getMsgId() == null ? new String[0] : r.getMsgId().split(",");
            for (int k = 0; k < msgs.size(); k++) {
                Map<String, Object> ev = info(b + k, msgs.get(k));
                ev.put("event", "sent");
                ev.put("batch", true);
                ev.put("msgId", k < ids.length ? ids[k] : null);
                ev.put("queueId", name(r.getMessageQueue()));
                ev.put("queueOffset", r.getQueueOffset() + k);
                ev.put("status", r.getSendStatus().name());
                Common.emit(ev);
                sent++;
            }
        }
    }

    /**
     * Applies the --delay-* options to m; returns the TIMER_DELIVER_MS it set
     * (0 if none).
     */
    private long delay(Message m) {
        long deliverAt = 0;
        if (o.integer("delay-level") > 0) {
            m.setDelayTimeLevel(o.integer("delay-level"));
        }
        if (o.num("deliver-at-ms-from-now") > 0) {
            deliverAt = System.currentTimeMillis() + o.num("deliver-at-ms-from-now");
            MessageAccessor.putProperty(m, "TIMER_DELIVER_MS", String.valueOf(deliverAt));
        }
        if (o.num("delay-sec") > 0) {
            MessageAccessor.putProperty(m, "TIMER_DELAY_SEC", o.str("delay-sec"));
        }
        if (o.num("delay-ms") > 0) {
            MessageAccessor.putProperty(m, "TIMER_DELAY_MS", o.str("delay-ms"));
        }
        return deliverAt;
    }

    private Message build(long i, Integer orderKeys) {
        Message m = message(topic, prefix, tags, i);
        if (orderKeys != null) {
            m.putUserProperty("orderKey", prefix + "-o" + (i % orderKeys));
            m.putUserProperty("orderSeq", String.valueOf(i / orderKeys));
        }
        return m;
    }

    /** Message i of the scenarios (key, tag, body, user properties; see the class comment). */
    static Message message(String topic, String prefix, String[] tags, long i) {
        String key = prefix + "-k" + i;
        String tag = tags[(int) (i % tags.length)];
        Message m = new Message(topic, tag, key, (prefix + " body #" + i + " ✓").getBytes(StandardCharsets.UTF_8));
        m.putUserProperty("seq", String.valueOf(i));
        m.putUserProperty("prefix", prefix);
        m.putUserProperty("color", "blue green");
        return m;
    }

    private Map<String, Object> info(long i, Message m) {
        Map<String, Object> ev = Common.obj("i", i, "key", m.getKeys(), "tag", m.getTags());
        if (m.getProperty("orderKey") != null) {
            ev.put("orderKey", m.getProperty("orderKey"));
            ev.put("orderSeq", Long.parseLong(m.getProperty("orderSeq")));
        }
        return ev;
    }

    private void report(long i, Message m, SendResult r, String target) {
        report(i, m, r, target, Common.obj());
    }

    private void report(long i, Message m, SendResult r, String target, Map<String, Object> extra) {
        Map<String, Object> ev = info(i, m);
        extra.forEach((k, v) -> {
            if (v != null) {
                ev.put(k, v);
            }
        });
        ev.put("event", "sent");
        ev.put("msgId", r.getMsgId());
        ev.put("offsetMsgId", r.getOffsetMsgId());
        ev.put("queueId", name(r.getMessageQueue()));
        ev.put("brokerName", r.getMessageQueue().getBrokerName());
        ev.put("qid", r.getMessageQueue().getQueueId());
        ev.put("queueOffset", r.getQueueOffset());
        ev.put("status", r.getSendStatus().name());
        if (target != null) {
            ev.put("target", target); // the queue the client asked for
        }
        Common.emit(ev);
        sent++;
    }

    static String name(MessageQueue mq) {
        return mq.getBrokerName() + ":" + mq.getQueueId();
    }

    private static List<String> names(List<MessageQueue> mqs) {
        List<String> out = new ArrayList<>();
        for (MessageQueue mq : mqs) {
            out.add(name(mq));
        }
        return out;
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
