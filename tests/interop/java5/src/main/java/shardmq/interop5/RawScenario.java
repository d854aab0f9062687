package shardmq.interop5;

import shardmq.interop.common.Common;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import com.alibaba.fastjson.JSON;
import com.alibaba.fastjson.JSONArray;
import com.alibaba.fastjson.JSONObject;

import org.apache.rocketmq.client.consumer.AckCallback;
import org.apache.rocketmq.client.consumer.AckResult;
import org.apache.rocketmq.client.consumer.PopCallback;
import org.apache.rocketmq.client.consumer.PopResult;
import org.apache.rocketmq.common.filter.ExpressionType;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageRequestMode;
import org.apache.rocketmq.remoting.protocol.RemotingCommand;
import org.apache.rocketmq.remoting.protocol.header.AckMessageRequestHeader;
import org.apache.rocketmq.remoting.protocol.header.ChangeInvisibleTimeRequestHeader;
import org.apache.rocketmq.remoting.protocol.header.ExtraInfoUtil;
import org.apache.rocketmq.remoting.protocol.header.PopMessageRequestHeader;

/**
 * Step-by-step POP program: each remoting code on its own, through the 5.x
 * client's own MQClientAPIImpl methods (popMessageAsync, ackMessageAsync,
 * changeInvisibleTimeAsync, batchAckMessageAsync, setMessageRequestMode), so a
 * test drives every code precisely and sees both what the broker answered
 * (response code, remark, header fields, taken by an RPCHook) and what the
 * client made of it (PopResult, the POP_CK handle it built per message).
 *
 * <p>Reads one JSON command per line on stdin, answers one JSON line per
 * command on stdout (the same "event" as the "op"), in order; ends at EOF
 * ({"event":"done"}, exit 0) or at --timeout-ms (exit 3). Every request has a
 * timeout (--request-timeout-ms, plus pollMs for a pop). Commands:
 * <ul>
 * <li>{"op":"route"}: the topic route (broker entries with master address, queue data).
 * <li>{"op":"set-mode","mode":"POP"|"PULL","popShareQueueNum":0}: SET_MESSAGE_REQUEST_MODE to every master.
 * <li>{"op":"pop","max":32,"invisibleMs":60000,"pollMs":0,"queueId":-1,"initMode":0,"order":false,
 *   "attemptId":null,"exp":"*","broker":null}: POP_MESSAGE (broker: a broker name of the route; default the
 *   first). Answer: code, remark, ext (popTime, invisibleTime, reviveQid, restNum, startOffsetInfo,
 *   msgOffsetInfo, orderCountInfo), status (client PopStatus), msgs (with popCk and its parsed fields ck),
 *   clientError when the client rejected the answer, sentMs / recvMs.
 * <li>{"op":"ack","handle":H} or {"op":"ack","key":K} (the latest handle of key K): ACK_MESSAGE with the
 *   header the push consumer builds (DefaultMQPushConsumerImpl.ackAsync). Answer: code, remark, ext, status.
 * <li>{"op":"change","handle"|"key",...,"invisibleMs":T}: CHANGE_MESSAGE_INVISIBLETIME with the push
 *   consumer's header. Answer: code, remark, ext (popTime, invisibleTime, reviveQid), status, newHandle (the
 *   handle the client builds from the answer; it replaces the key's latest handle).
 * <li>{"op":"batch-ack","handles":[...]} or {"op":"batch-ack","keys":[...]}: BATCH_ACK_MESSAGE as
 *   MQClientAPIImpl.batchAckMessageAsync(addr, timeout, cb, topic, group, extraInfoList) builds it.
 * <li>{"op":"sleep","ms":N}.
 * </ul>
 */
final class RawScenario {
    private static final String USAGE = "usage: raw --namesrv 127.0.0.1:9876 --topic T --group G "
        + "[--request-timeout-ms 5000] [--timeout-ms 60000]   (JSON commands on stdin, see RawScenario.java)";

    private final Client5 c;
    private final String topic;
    private final String group;
    private final long reqTimeout;
    private final Map<String, String> latestHandle = new HashMap<>();

    private RawScenario(Client5 c, String topic, String group, long reqTimeout) {
        this.c = c;
        this.topic = topic;
        this.group = group;
        this.reqTimeout = reqTimeout;
    }

    static void main(String[] argv) throws Exception {
        Common.Opts o = new Common.Opts(USAGE, argv, Common.spec(
            "namesrv", null, "topic", null, "group", null, "request-timeout-ms", "5000", "timeout-ms", "60000"));
        Common.startWatchdog(o.num("timeout-ms"), "raw");
        Client5 c = null;
        try {
            c = new Client5(o.str("namesrv"), "raw", new Rpc(false));
        } catch (Exception e) {
            Common.fail("start", e);
        }
        RawScenario r = new RawScenario(c, o.str("topic"), o.str("group"), o.num("request-timeout-ms"));
        Common.emit(Common.obj("event", "started", "topic", r.topic, "group", r.group));
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        int n = 0;
        while ((line = in.readLine()) != null) {
            line = line.trim();
            if (line.isEmpty()) {
                continue;
            }
            n++;
            JSONObject cmd;
            try {
                cmd = JSON.parseObject(line);
            } catch (RuntimeException e) {
                Common.emit(Common.obj("event", "error", "stage", "command", "error", "not JSON: " + line));
                Common.halt(2);
                return;
            }
            try {
                Map<String, Object> out = r.run(cmd);
                out.put("seq", n);
                Common.emit(out);
            } catch (Exception e) {
                Common.fail("command " + cmd.getString("op"), e, "command", line);
            }
        }
        Common.emit(Common.obj("event", "done", "commands", n, "rpcCounts", c.rpc.counts()));
        c.shutdown();
        Common.halt(0);
    }

    private Map<String, Object> run(JSONObject cmd) throws Exception {
        String op = cmd.getString("op");
        switch (op == null ? "" : op) {
            case "route":
                return withEvent("route", Client5.routeJson(c.route(topic, reqTimeout)));
            case "set-mode": {
                MessageRequestMode mode = MessageRequestMode.valueOf(cmd.getString("mode") == null ? "POP"
                    : cmd.getString("mode"));
                int share = cmd.getIntValue("popShareQueueNum");
                return Common.obj("event", "set-mode", "results", c.setMode(topic, group, mode, share, reqTimeout));
            }
            case "pop":
                return pop(cmd);
            case "ack":
                return ack(cmd);
            case "change":
                return change(cmd);
            case "batch-ack":
                return batchAck(cmd);
            case "sleep": {
                long ms = cmd.getLongValue("ms");
                Thread.sleep(ms);
                return Common.obj("event", "slept", "ms", ms);
            }
            default:
                throw new IllegalArgumentException("unknown op " + op);
        }
    }

    private static Map<String, Object> withEvent(String ev, Map<String, Object> m) {
        m.put("event", ev);
        return m;
    }

    private String addrOf(String brokerName) throws Exception {
        Map<String, String> masters = Client5.masters(c.route(topic, reqTimeout));
        if (masters.isEmpty()) {
            throw new IllegalStateException("topic " + topic + " has no broker with a master in its route");
        }
        if (brokerName == null) {
            return masters.values().iterator().next();
        }
        String a = masters.get(brokerName);
        if (a == null) {
            throw new IllegalStateException("broker " + brokerName + " not in the route of " + topic + ": " + masters);
        }
        return a;
    }

    private String brokerOf(String brokerName) throws Exception {
        if (brokerName != null) {
            return brokerName;
        }
        return Client5.masters(c.route(topic, reqTimeout)).keySet().iterator().next();
    }

    /** Adds the raw answer the RPCHook saw for `code` (waits briefly: the hook runs on the I/O thread). */
    private void raw(Map<String, Object> out, int code) throws InterruptedException {
        RemotingCommand resp = null;
        for (int i = 0; i < 50 && resp == null; i++) {
            resp = c.rpc.last(code);
            if (resp == null) {
                Thread.sleep(10);
            }
        }
        if (resp == null) {
            out.put("code", null);
            out.put("noAnswer", true);
            return;
        }
        out.put("code", resp.getCode());
        out.put("remark", resp.getRemark());
        out.put("ext", Rpc.fields(resp.getExtFields()));
    }

    private Map<String, Object> pop(JSONObject cmd) throws Exception {
        String brokerName = brokerOf(cmd.getString("broker"));
        String addr = addrOf(brokerName);
        long pollMs = cmd.containsKey("pollMs") ? cmd.getLongValue("pollMs") : 0L;
        PopMessageRequestHeader h = new PopMessageRequestHeader();
        h.setConsumerGroup(group);
        h.setTopic(topic);
        h.setQueueId(cmd.containsKey("queueId") ? cmd.getIntValue("queueId") : -1);
        h.setMaxMsgNums(cmd.containsKey("max") ? cmd.getIntValue("max") : 32);
        h.setInvisibleTime(cmd.containsKey("invisibleMs") ? cmd.getLongValue("invisibleMs") : 60000L);
        h.setInitMode(cmd.containsKey("initMode") ? cmd.getIntValue("initMode") : 0);
        h.setExpType(ExpressionType.TAG);
        h.setExp(cmd.containsKey("exp") ? cmd.getString("exp") : "*");
        h.setOrder(cmd.getBooleanValue("order"));
        if (cmd.getString("attemptId") != null) {
            h.setAttemptId(cmd.getString("attemptId"));
        }
        h.setBrokerName(brokerName);
        // As PullAPIWrapper.popAsync: pollTime and bornTime, request timeout = poll + 10 s.
        h.setPollTime(pollMs);
        h.setBornTime(System.currentTimeMillis());
        long timeout = pollMs + (pollMs > 0 ? 10_000 : reqTimeout);
        c.rpc.forget(Rpc.POP_MESSAGE);
        CompletableFuture<Object> f = new CompletableFuture<>();
        long sent = System.currentTimeMillis();
        c.api.popMessageAsync(brokerName, addr, h, timeout, new PopCallback() {
            @Override
            public void onSuccess(PopResult popResult) {
                f.complete(popResult);
            }

            @Override
            public void onException(Throwable e) {
                f.complete(e);
            }
        });
        Object res = f.get(timeout + 2000, TimeUnit.MILLISECONDS);
        long recv = System.currentTimeMillis();
        Map<String, Object> out = Common.obj("event", "pop", "broker", brokerName, "addr", addr,
            "req", Rpc.requestFields(RemotingCommand.createRequestCommand(Rpc.POP_MESSAGE, h)), "sentMs", sent,
            "recvMs", recv);
        raw(out, Rpc.POP_MESSAGE);
        List<Object> msgs = new ArrayList<>();
        if (res instanceof PopResult) {
            PopResult pr = (PopResult) res;
            out.put("status", String.valueOf(pr.getPopStatus()));
            out.put("restNum", pr.getRestNum());
            if (pr.getMsgFoundList() != null) {
                for (MessageExt m : pr.getMsgFoundList()) {
                    Map<String, Object> mj = Client5.msgJson(m);
                    msgs.add(mj);
                    if (m.getKeys() != null && mj.get("popCk") != null) {
                        latestHandle.put(m.getKeys(), (String) mj.get("popCk"));
                    }
                }
            }
        } else {
            out.put("status", "EXCEPTION");
            out.put("clientError", Common.describe((Throwable) res));
        }
        out.put("msgs", msgs);
        return out;
    }

    private String handleOf(JSONObject cmd) {
        String h = cmd.getString("handle");
        if (h == null && cmd.getString("key") != null) {
            h = latestHandle.get(cmd.getString("key"));
            if (h == null) {
                throw new IllegalArgumentException("no handle seen for key " + cmd.getString("key"));
            }
        }
        if (h == null) {
            throw new IllegalArgumentException("needs handle or key");
        }
        return h;
    }

    private static Map<String, Object> ackResult(Object res) {
        if (res instanceof AckResult) {
            AckResult a = (AckResult) res;
            return Common.obj("status", String.valueOf(a.getStatus()), "ackPopTime", a.getPopTime(),
                "ackExtraInfo", a.getExtraInfo());
        }
        return Common.obj("status", "EXCEPTION", "clientError", Common.describe((Throwable) res));
    }

    private static AckCallback callback(CompletableFuture<Object> f) {
        return new AckCallback() {
            @Override
            public void onSuccess(AckResult ackResult) {
                f.complete(ackResult);
            }

            @Override
            public void onException(Throwable e) {
                f.complete(e);
            }
        };
    }

    /** ACK_MESSAGE with the header DefaultMQPushConsumerImpl.ackAsync builds from a handle. */
    private Map<String, Object> ack(JSONObject cmd) throws Exception {
        String handle = handleOf(cmd);
        String[] s = ExtraInfoUtil.split(handle);
        String brokerName = ExtraInfoUtil.getBrokerName(s);
        AckMessageRequestHeader h = new AckMessageRequestHeader();
        h.setTopic(ExtraInfoUtil.getRealTopic(s, topic, group));
        h.setQueueId(ExtraInfoUtil.getQueueId(s));
        h.setOffset(ExtraInfoUtil.getQueueOffset(s));
        h.setConsumerGroup(group);
        h.setExtraInfo(handle);
        h.setBrokerName(brokerName);
        c.rpc.forget(Rpc.ACK_MESSAGE);
        CompletableFuture<Object> f = new CompletableFuture<>();
        c.api.ackMessageAsync(addrOf(brokerName), reqTimeout, callback(f), h);
        Object res = f.get(reqTimeout + 2000, TimeUnit.MILLISECONDS);
        Map<String, Object> out = Common.obj("event", "ack", "handle", handle, "key", cmd.getString("key"),
            "req", Rpc.requestFields(RemotingCommand.createRequestCommand(Rpc.ACK_MESSAGE, h)));
        raw(out, Rpc.ACK_MESSAGE);
        out.putAll(ackResult(res));
        return out;
    }

    /** CHANGE_MESSAGE_INVISIBLETIME as DefaultMQPushConsumerImpl.changePopInvisibleTimeAsync sends it. */
    private Map<String, Object> change(JSONObject cmd) throws Exception {
        String handle = handleOf(cmd);
        String[] s = ExtraInfoUtil.split(handle);
        String brokerName = ExtraInfoUtil.getBrokerName(s);
        ChangeInvisibleTimeRequestHeader h = new ChangeInvisibleTimeRequestHeader();
        h.setTopic(ExtraInfoUtil.getRealTopic(s, topic, group));
        h.setQueueId(ExtraInfoUtil.getQueueId(s));
        h.setOffset(ExtraInfoUtil.getQueueOffset(s));
        h.setConsumerGroup(group);
        h.setExtraInfo(handle);
        h.setInvisibleTime(cmd.getLongValue("invisibleMs"));
        h.setBrokerName(brokerName);
        c.rpc.forget(Rpc.CHANGE_MESSAGE_INVISIBLETIME);
        CompletableFuture<Object> f = new CompletableFuture<>();
        long sent = System.currentTimeMillis();
        c.api.changeInvisibleTimeAsync(brokerName, addrOf(brokerName), h, reqTimeout, callback(f));
        Object res = f.get(reqTimeout + 2000, TimeUnit.MILLISECONDS);
        Map<String, Object> out = Common.obj("event", "change", "handle", handle, "key", cmd.getString("key"),
            "sentMs", sent, "recvMs", System.currentTimeMillis(),
            "req", Rpc.requestFields(RemotingCommand.createRequestCommand(Rpc.CHANGE_MESSAGE_INVISIBLETIME, h)));
        raw(out, Rpc.CHANGE_MESSAGE_INVISIBLETIME);
        out.putAll(ackResult(res));
        if (res instanceof AckResult && ((AckResult) res).getExtraInfo() != null) {
            String nh = ((AckResult) res).getExtraInfo();
            out.put("newHandle", nh);
            out.put("newCk", Client5.handleJson(nh));
            if (cmd.getString("key") != null) {
                latestHandle.put(cmd.getString("key"), nh);
            }
        }
        return out;
    }

    /** BATCH_ACK_MESSAGE built by MQClientAPIImpl.batchAckMessageAsync from the handles (one broker). */
    private Map<String, Object> batchAck(JSONObject cmd) throws Exception {
        List<String> handles = new ArrayList<>();
        JSONArray hs = cmd.getJSONArray("handles");
        JSONArray ks = cmd.getJSONArray("keys");
        if (hs != null) {
            for (int i = 0; i < hs.size(); i++) {
                handles.add(hs.getString(i));
            }
        }
        if (ks != null) {
            for (int i = 0; i < ks.size(); i++) {
                JSONObject k = new JSONObject();
                k.put("key", ks.getString(i));
                handles.add(handleOf(k));
            }
        }
        if (handles.isEmpty()) {
            throw new IllegalArgumentException("batch-ack needs handles or keys");
        }
        String brokerName = ExtraInfoUtil.getBrokerName(ExtraInfoUtil.split(handles.get(0)));
        c.rpc.forget(Rpc.BATCH_ACK_MESSAGE);
        CompletableFuture<Object> f = new CompletableFuture<>();
        c.api.batchAckMessageAsync(addrOf(brokerName), reqTimeout, callback(f), topic, group, handles);
        Object res = f.get(reqTimeout + 2000, TimeUnit.MILLISECONDS);
        Map<String, Object> out = Common.obj("event", "batch-ack", "handles", handles);
        raw(out, Rpc.BATCH_ACK_MESSAGE);
        out.putAll(ackResult(res));
        return out;
    }
}
