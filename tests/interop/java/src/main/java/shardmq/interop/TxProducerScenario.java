package shardmq.interop;

import shardmq.interop.common.Common;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.rocketmq.client.hook.SendMessageContext;
import org.apache.rocketmq.client.hook.SendMessageHook;
import org.apache.rocketmq.client.producer.LocalTransactionState;
import org.apache.rocketmq.client.producer.TransactionListener;
import org.apache.rocketmq.client.producer.TransactionMQProducer;
import org.apache.rocketmq.client.producer.TransactionSendResult;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;

/**
 * Java (rocketmq-client 4.9.x) transactional producer scenario
 * ({@code txproducer}).
 *
 * <p>A TransactionMQProducer (group --group) sends --count half messages
 * (sendMessageInTransaction; same keys / tags / bodies / user properties as
 * {@code producer}, see {@link ProducerScenario#message}). Message i gets the
 * outcome outcomes[i % outcomes.length] of --outcome (comma-separated):
 *
 * <ul>
 *   <li>commit: executeLocalTransaction answers COMMIT_MESSAGE;</li>
 *   <li>rollback: ROLLBACK_MESSAGE;</li>
 *   <li>unknown-then-commit / unknown-then-rollback: UNKNOW, then the first
 *       checkLocalTransaction (broker check-back, CHECK_TRANSACTION_STATE)
 *       answers COMMIT_MESSAGE / ROLLBACK_MESSAGE;</li>
 *   <li>unknown-forever: UNKNOW, and every check answers UNKNOW.</li>
 * </ul>
 *
 * <p>A check for a message with commit or rollback outcome answers that
 * outcome again (the broker should not ask: END_TRANSACTION told it).
 *
 * <p>Output (JSON lines): {"event":"started"}; per message {"event":"exec",key,
 * transactionId,answer,time} from executeLocalTransaction and then
 * {"event":"sent",i,key,tag,outcome,sendStatus,status,localTransactionState,msgId,
 * offsetMsgId,transactionId,queueId,queueOffset,sendStartMs,sendEndMs} (offsetMsgId: the
 * half message's, from the send response through a SendMessageHook, since
 * TransactionSendResult does not carry it in 4.9.x);
 * {"event":"sent_all","sent":n}; per check {"event":"check",key,transactionId,
 * msgId,offsetMsgId,topic,n (checks of that key so far),answer,time}. The
 * producer then stays up (to answer checks) until stdin reaches EOF:
 * {"event":"done","sent":n,"checks":m}, shutdown(), {"event":"shutdown"}. On
 * failure {"event":"error",...} and exit code 1; --timeout-ms watchdog (exit 3).
 */
final class TxProducerScenario {
    private static final String USAGE = "usage: txproducer --namesrv 127.0.0.1:9876 --topic T --group G --count N "
        + "[--start 0] [--prefix x] [--tags TagA,TagB,TagC] "
        + "[--outcome commit|rollback|unknown-then-commit|unknown-then-rollback|unknown-forever[,...]] "
        + "[--send-timeout-ms 5000] [--timeout-ms 60000]";

    private static final List<String> OUTCOMES =
        List.of("commit", "rollback", "unknown-then-commit", "unknown-then-rollback", "unknown-forever");

    static void main(String[] argv) throws Exception {
        Common.Opts o = new Common.Opts(USAGE, argv, Common.spec(
            "namesrv", null, "topic", null, "group", null, "count", "0", "start", "0", "prefix", "x",
            "tags", "TagA,TagB,TagC", "outcome", "commit", "send-timeout-ms", "5000", "timeout-ms", "60000"));
        String[] outcomes = o.str("outcome").split(",");
        for (String oc : outcomes) {
            if (!OUTCOMES.contains(oc)) {
                Common.emit(Common.obj("event", "error", "stage", "args", "error", "bad --outcome " + oc));
                Common.halt(2);
            }
        }
        Common.startWatchdog(o.num("timeout-ms"), "txproducer");
        String topic = o.str("topic");
        String prefix = o.str("prefix");
        String[] tags = o.str("tags").split(",");
        Map<String, String> outcomeOf = new ConcurrentHashMap<>();
        Map<String, Integer> checks = new ConcurrentHashMap<>();

        TransactionMQProducer producer = new TransactionMQProducer(o.str("group"));
        producer.setNamesrvAddr(o.str("namesrv"));
        producer.setVipChannelEnabled(false);
        producer.setSendMsgTimeout(o.integer("send-timeout-ms"));
        producer.setTransactionListener(new TransactionListener() {
            @Override
            public LocalTransactionState executeLocalTransaction(Message msg, Object arg) {
                String outcome = (String) arg;
                outcomeOf.put(msg.getKeys(), outcome);
                LocalTransactionState answer;
                switch (outcome) {
                    case "commit":
                        answer = LocalTransactionState.COMMIT_MESSAGE;
                        break;
                    case "rollback":
                        answer = LocalTransactionState.ROLLBACK_MESSAGE;
                        break;
                    default:
                        answer = LocalTransactionState.UNKNOW;
                }
                Common.emit(Common.obj("event", "exec", "key", msg.getKeys(), "transactionId",
                    msg.getTransactionId(), "answer", answer.name(), "time", System.currentTimeMillis()));
                return answer;
            }

            @Override
            public LocalTransactionState checkLocalTransaction(MessageExt msg) {
                String key = msg.getKeys();
                int n = checks.merge(String.valueOf(key), 1, Integer::sum);
                String outcome = key == null ? null : outcomeOf.get(key);
                LocalTransactionState answer;
                if (outcome == null) {
                    answer = LocalTransactionState.UNKNOW; // not one of ours (or not executed yet)
                } else {
                    switch (outcome) {
                        case "commit":
                        case "unknown-then-commit":
                            answer = LocalTransactionState.COMMIT_MESSAGE;
                            break;
                        case "rollback":
                        case "unknown-then-rollback":
                            answer = LocalTransactionState.ROLLBACK_MESSAGE;
                            break;
                        default:
                            answer = LocalTransactionState.UNKNOW;
                    }
                }
                Common.emit(Common.obj("event", "check", "key", key, "transactionId", msg.getTransactionId(),
                    "msgId", msg.getMsgId(), "offsetMsgId",
                    msg instanceof org.apache.rocketmq.common.message.MessageClientExt
                        ? ((org.apache.rocketmq.common.message.MessageClientExt) msg).getOffsetMsgId() : null,
                    "topic", msg.getTopic(), "outcome", outcome, "n", n, "answer", answer.name(),
                    "time", System.currentTimeMillis()));
                return answer;
            }
        });
        // TransactionSendResult (4.9.x) does not copy the send's offsetMsgId, which the
        // client decodes END_TRANSACTION's commitLogOffset from: take it from a send hook.
        Map<String, String> offsetMsgIds = new ConcurrentHashMap<>();
        producer.getDefaultMQProducerImpl().registerSendMessageHook(new SendMessageHook() {
            @Override
            public String hookName() {
                return "interop-offset-msg-id";
            }

            @Override
            public void sendMessageBefore(SendMessageContext ctx) {
            }

            @Override
            public void sendMessageAfter(SendMessageContext ctx) {
                if (ctx.getSendResult() != null && ctx.getSendResult().getOffsetMsgId() != null
                    && ctx.getMessage().getKeys() != null) {
                    offsetMsgIds.put(ctx.getMessage().getKeys(), ctx.getSendResult().getOffsetMsgId());
                }
            }
        });
        try {
            producer.start();
        } catch (Exception e) {
            Common.fail("start", e);
        }
        Common.emit(Common.obj("event", "started", "mode", "transaction"));

        long start = o.num("start");
        long count = o.num("count");
        int sent = 0;
        try {
            for (long i = start; i < start + count; i++) {
                Message m = ProducerScenario.message(topic, prefix, tags, i);
                String outcome = outcomes[(int) ((i - start) % outcomes.length)];
                long t0 = System.currentTimeMillis();
                TransactionSendResult r = producer.sendMessageInTransaction(m, outcome);
                long t1 = System.currentTimeMillis();
                Common.emit(Common.obj("event", "sent", "i", i, "key", m.getKeys(), "tag", m.getTags(),
                    "outcome", outcome, "sendStatus", r.getSendStatus().name(), "status", r.getSendStatus().name(),
                    "localTransactionState",
                    r.getLocalTransactionState() == null ? null : r.getLocalTransactionState().name(),
                    "msgId", r.getMsgId(), "offsetMsgId", offsetMsgIds.get(m.getKeys()), "transactionId", r.getTransactionId(),
                    "queueId", r.getMessageQueue() == null ? null : ProducerScenario.name(r.getMessageQueue()),
                    "queueOffset", r.getQueueOffset(), "sendStartMs", t0, "sendEndMs", t1));
                sent++;
            }
        } catch (Exception e) {
            Common.fail("send", e, "sent", sent);
        }
        Common.emit(Common.obj("event", "sent_all", "sent", sent));

        // Stay up to answer check-backs until stdin reaches EOF.
        byte[] buf = new byte[4096];
        try {
            while (System.in.read(buf) >= 0) {
                // discard
            }
        } catch (Exception e) {
            // treat as EOF
        }
        int total = checks.values().stream().mapToInt(Integer::intValue).sum();
        Common.emit(Common.obj("event", "done", "sent", sent, "checks", total));
        try {
            producer.shutdown();
            Common.emit(Common.obj("event", "shutdown"));
        } catch (Exception e) {
            Common.log("txproducer shutdown: " + e);
        }
        Common.halt(0);
    }
}
