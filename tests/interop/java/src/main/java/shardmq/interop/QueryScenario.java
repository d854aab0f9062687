package shardmq.interop;

import shardmq.interop.common.Common;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import org.apache.rocketmq.client.QueryResult;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;

/**
 * Java (rocketmq-client 4.9.x) finding messages: the MQAdmin methods every
 * 4.x client has, unmodified.
 *
 * <p>Sends --count messages to --topic (message i: keys
 * "&lt;prefix&gt;-order-&lt;i % 5&gt; &lt;prefix&gt;-k&lt;i&gt;", body "&lt;prefix&gt; body #&lt;i&gt;"),
 * one "sent" {i, msgId, offsetMsgId} each. Then:
 * <ul>
 * <li>queryMessage(topic, "&lt;prefix&gt;-order-&lt;j&gt;", 64, 0, now + 1 h) for j in 0..4
 *     (QUERY_MESSAGE to every broker of the route; the client re-checks keys):
 *     "queried" {key, bodies (sorted)};</li>
 * <li>viewMessage(topic, msgId of message --view) (an id that is not an offset
 *     id: QUERY_MESSAGE with _UNIQUE_KEY_QUERY=true): "viewed-uniq" {msgId, body, keys};</li>
 * <li>viewMessage(offsetMsgId of the same message) (VIEW_MESSAGE_BY_ID):
 *     "viewed-offset" {msgId, body};</li>
 * <li>queryMessage for a key nobody sent: "query-empty" {error} (the client
 *     throws when nothing is found).</li>
 * </ul>
 * Ends with "done"; a failure is an "error" event and exit code 1.
 */
final class QueryScenario {
    private static final String USAGE = "usage: query --namesrv 127.0.0.1:9876 --topic T --group G --count N "
        + "[--prefix q] [--view 3] [--timeout-ms 60000]";

    static void main(String[] argv) throws Exception {
        Common.Opts o = new Common.Opts(USAGE, argv, Common.spec(
            "namesrv", null, "topic", null, "group", null, "count", "0", "prefix", "q", "view", "3",
            "timeout-ms", "60000"));
        Common.startWatchdog(o.num("timeout-ms"), "query");
        String topic = o.str("topic");
        String prefix = o.str("prefix");
        DefaultMQProducer producer = new DefaultMQProducer(o.str("group"));
        producer.setNamesrvAddr(o.str("namesrv"));
        producer.setRetryTimesWhenSendFailed(0);
        int view = (int) o.num("view");
        String viewId = null;
        String viewOffsetId = null;
        try {
            producer.start();
            for (int i = 0; i < o.num("count"); i++) {
                Message m = new Message(topic, "TagA", prefix + "-order-" + (i % 5) + " " + prefix + "-k" + i,
                    (prefix + " body #" + i).getBytes(StandardCharsets.UTF_8));
                SendResult r = producer.send(m);
                Common.emit(Common.obj("event", "sent", "i", i, "msgId", r.getMsgId(),
                    "offsetMsgId", r.getOffsetMsgId()));
                if (i == view) {
                    viewId = r.getMsgId();
                    viewOffsetId = r.getOffsetMsgId();
                }
            }
        } catch (Exception e) {
            Common.fail("send", e);
        }
        long end = System.currentTimeMillis() + 3_600_000L;
        try {
            for (int j = 0; j < 5; j++) {
                String key = prefix + "-order-" + j;
                QueryResult qr = producer.queryMessage(topic, key, 64, 0, end);
                List<String> bodies = new ArrayList<>();
                for (MessageExt m : qr.getMessageList()) {
                    bodies.add(new String(m.getBody(), StandardCharsets.UTF_8));
                }
                java.util.Collections.sort(bodies);
                Common.emit(Common.obj("event", "queried", "key", key, "bodies", bodies));
            }
            if (viewId != null) {
                MessageExt m = producer.viewMessage(topic, viewId);
                Common.emit(Common.obj("event", "viewed-uniq", "msgId", m.getMsgId(),
                    "body", new String(m.getBody(), StandardCharsets.UTF_8), "keys", m.getKeys()));
                MessageExt byOffset = producer.viewMessage(viewOffsetId);
                Common.emit(Common.obj("event", "viewed-offset", "msgId", byOffset.getMsgId(),
                    "body", new String(byOffset.getBody(), StandardCharsets.UTF_8)));
            }
        } catch (Exception e) {
            Common.fail("query", e);
        }
        try {
            QueryResult qr = producer.queryMessage(topic, prefix + "-nobody-sent-this", 64, 0, end);
            Common.emit(Common.obj("event", "query-empty", "error", "", "found", qr.getMessageList().size()));
        } catch (MQClientException e) {
            Common.emit(Common.obj("event", "query-empty", "error", Common.describe(e), "found", 0));
        }
        producer.shutdown();
        Common.emit(Common.obj("event", "done"));
        Common.halt(0);
    }
}
