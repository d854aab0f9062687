package shardmq.interop;

import shardmq.interop.common.Common;

import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.Set;
import java.util.TreeSet;

import org.apache.rocketmq.acl.common.AclClientRPCHook;
import org.apache.rocketmq.acl.common.SessionCredentials;
import org.apache.rocketmq.client.consumer.DefaultMQPullConsumer;
import org.apache.rocketmq.client.consumer.PullResult;
import org.apache.rocketmq.client.consumer.PullStatus;
import org.apache.rocketmq.client.exception.MQBrokerException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;

/**
 * Java (rocketmq-client 4.9.x) with an ACL account: every request signed by
 * rocketmq-acl's {@link AclClientRPCHook}, unmodified.
 *
 * <p>--mode produce: sends --count messages (keys &lt;prefix&gt;-k&lt;i&gt;, body
 * "&lt;prefix&gt; body #&lt;i&gt;"), no retries; one "sent" {key, msgId, offsetMsgId}
 * or "send-error" {key, code, error} per message.
 *
 * <p>--mode consume: pulls every queue of the topic from offset 0 with
 * DefaultMQPullConsumer until --count messages or --wait-ms; "received"
 * {key, body} per message, "pull-error" {queue, code, error} per refused
 * queue (once each), then "pulled" {count}.
 *
 * <p>--mode view: viewMessage(--msg-id) (VIEW_MESSAGE_BY_ID); "viewed"
 * {key, topic} or "view-error" {code, error}.
 *
 * <p>Every mode ends with "done". Errors that are not the broker's answer
 * (no route, timeouts) have code -1.
 */
final class AclScenario {
    private static final String USAGE = "usage: acl --namesrv 127.0.0.1:9876 --topic T --group G --ak AK --sk SK "
        + "--mode produce|consume|view [--count N] [--prefix acl] [--wait-ms 8000] [--msg-id ID]";

    static void main(String[] argv) throws Exception {
        Common.Opts o = new Common.Opts(USAGE, argv, Common.spec(
            "namesrv", null, "topic", null, "group", null, "ak", null, "sk", null, "mode", null,
            "count", "0", "prefix", "acl", "wait-ms", "8000", "msg-id", "", "timeout-ms", "60000"));
        Common.startWatchdog(o.num("timeout-ms"), "acl");
        AclClientRPCHook hook = new AclClientRPCHook(new SessionCredentials(o.str("ak"), o.str("sk")));
        switch (o.str("mode")) {
            case "produce":
                produce(o, hook);
                break;
            case "consume":
                consume(o, hook);
                break;
            case "view":
                view(o, hook);
                break;
            default:
                Common.emit(Common.obj("event", "error", "stage", "args", "error", "bad --mode " + o.str("mode")));
                Common.halt(2);
        }
        Common.emit(Common.obj("event", "done"));
        Common.halt(0);
    }

    /** The broker's answer inside {@code e}: the producer wraps refusals it
     * may retry (NO_PERMISSION is one) in an MQClientException. */
    private static MQBrokerException broker(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof MQBrokerException) {
                return (MQBrokerException) t;
            }
        }
        return null;
    }

    private static int code(Throwable e) {
        MQBrokerException b = broker(e);
        return b != null ? b.getResponseCode() : -1;
    }

    private static String text(Throwable e) {
        MQBrokerException b = broker(e);
        return b != null ? String.valueOf(b.getErrorMessage()) : Common.describe(e);
    }

    private static void produce(Common.Opts o, AclClientRPCHook hook) throws Exception {
        DefaultMQProducer p = new DefaultMQProducer(o.str("group"), hook);
        p.setNamesrvAddr(o.str("namesrv"));
        p.setRetryTimesWhenSendFailed(0);
        p.setSendMsgTimeout(5000);
        p.start();
        String prefix = o.str("prefix");
        for (int i = 0; i < o.integer("count"); i++) {
            String key = prefix + "-k" + i;
            Message m = new Message(o.str("topic"), "TagA", key,
                (prefix + " body #" + i).getBytes(StandardCharsets.UTF_8));
            try {
                SendResult r = p.send(m);
                Common.emit(Common.obj("event", "sent", "key", key, "msgId", r.getMsgId(),
                    "offsetMsgId", r.getOffsetMsgId()));
            } catch (Exception e) {
                Common.emit(Common.obj("event", "send-error", "key", key, "code", code(e), "error", text(e)));
            }
        }
        p.shutdown();
    }

    private static void consume(Common.Opts o, AclClientRPCHook hook) throws Exception {
        DefaultMQPullConsumer c = new DefaultMQPullConsumer(o.str("group"), hook);
        c.setNamesrvAddr(o.str("namesrv"));
        c.start();
        Set<MessageQueue> queues = new TreeSet<>(c.fetchSubscribeMessageQueues(o.str("topic")));
        java.util.Map<MessageQueue, Long> next = new java.util.HashMap<>();
        Set<MessageQueue> refused = new HashSet<>();
        int got = 0;
        long deadline = System.currentTimeMillis() + o.num("wait-ms");
        while (got < o.integer("count") && System.currentTimeMillis() < deadline) {
            boolean any = false;
            for (MessageQueue mq : queues) {
                if (refused.contains(mq)) {
                    continue;
                }
                try {
                    PullResult r = c.pull(mq, "*", next.getOrDefault(mq, 0L), 32, 3000);
                    next.put(mq, r.getNextBeginOffset());
                    if (r.getPullStatus() == PullStatus.FOUND) {
                        for (MessageExt m : r.getMsgFoundList()) {
                            any = true;
                            got++;
                            Common.emit(Common.obj("event", "received", "key", m.getKeys(),
                                "body", new String(m.getBody(), StandardCharsets.UTF_8)));
                        }
                    }
                } catch (Exception e) {
                    refused.add(mq);
                    Common.emit(Common.obj("event", "pull-error", "queue", mq.getBrokerName() + ":" + mq.getQueueId(),
                        "code", code(e), "error", text(e)));
                }
            }
            if (refused.size() == queues.size()) {
                break;
            }
            if (!any) {
                Thread.sleep(200);
            }
        }
        Common.emit(Common.obj("event", "pulled", "count", got));
        c.shutdown();
    }

    private static void view(Common.Opts o, AclClientRPCHook hook) throws Exception {
        DefaultMQPullConsumer c = new DefaultMQPullConsumer(o.str("group"), hook);
        c.setNamesrvAddr(o.str("namesrv"));
        c.start();
        try {
            MessageExt m = c.viewMessage(o.str("msg-id"));
            Common.emit(Common.obj("event", "viewed", "key", m.getKeys(), "topic", m.getTopic()));
        } catch (Exception e) {
            Common.emit(Common.obj("event", "view-error", "code", code(e), "error", text(e)));
        }
        c.shutdown();
    }
}
