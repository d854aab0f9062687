package shardmq.interop5;

import shardmq.interop.common.Common;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.rocketmq.remoting.RPCHook;
import org.apache.rocketmq.remoting.protocol.RemotingCommand;

/**
 * RPCHook of the 5.x client that records what the client sends and what the
 * broker answers, without changing either: per request code a count of
 * requests and of answers per response code ({@link #counts}), the latest
 * answer per request code ({@link #last}, for the raw program, which has one
 * request in flight at a time), and optionally an {"event":"rpc"} line per
 * round trip of the POP-related codes (request and response ext fields), so a
 * test can see which remoting codes the client really used.
 */
final class Rpc implements RPCHook {
    static final int PULL_MESSAGE = 11;
    static final int HEART_BEAT = 34;
    static final int QUERY_ASSIGNMENT = 400;
    static final int SET_MESSAGE_REQUEST_MODE = 401;
    static final int POP_MESSAGE = 200050;
    static final int ACK_MESSAGE = 200051;
    static final int PEEK_MESSAGE = 200052;
    static final int CHANGE_MESSAGE_INVISIBLETIME = 200053;
    static final int NOTIFICATION = 200054;
    static final int POLLING_INFO = 200055;
    static final int BATCH_ACK_MESSAGE = 200151;

    /** Codes reported as "rpc" events (every one of them, except POP answers past {@link #MAX_EMPTY_POPS}). */
    private static final java.util.Set<Integer> REPORTED = java.util.Set.of(PULL_MESSAGE, QUERY_ASSIGNMENT,
        SET_MESSAGE_REQUEST_MODE, POP_MESSAGE, ACK_MESSAGE, PEEK_MESSAGE, CHANGE_MESSAGE_INVISIBLETIME, NOTIFICATION,
        POLLING_INFO, BATCH_ACK_MESSAGE);
    /** POP answers without messages (long-poll timeouts) are reported only this many times. */
    private static final int MAX_EMPTY_POPS = 5;

    private final boolean emit;
    private final Map<String, AtomicLong> counts = new ConcurrentHashMap<>();
    private final Map<Integer, RemotingCommand> last = new ConcurrentHashMap<>();
    private final Map<Integer, Long> sentAt = new ConcurrentHashMap<>();
    private final AtomicLong emptyPops = new AtomicLong();

    Rpc(boolean emit) {
        this.emit = emit;
    }

    static String name(int code) {
        switch (code) {
            case PULL_MESSAGE: return "PULL_MESSAGE";
            case HEART_BEAT: return "HEART_BEAT";
            case QUERY_ASSIGNMENT: return "QUERY_ASSIGNMENT";
            case SET_MESSAGE_REQUEST_MODE: return "SET_MESSAGE_REQUEST_MODE";
            case POP_MESSAGE: return "POP_MESSAGE";
            case ACK_MESSAGE: return "ACK_MESSAGE";
            case PEEK_MESSAGE: return "PEEK_MESSAGE";
            case CHANGE_MESSAGE_INVISIBLETIME: return "CHANGE_MESSAGE_INVISIBLETIME";
            case NOTIFICATION: return "NOTIFICATION";
            case POLLING_INFO: return "POLLING_INFO";
            case BATCH_ACK_MESSAGE: return "BATCH_ACK_MESSAGE";
            default: return String.valueOf(code);
        }
    }

    @Override
    public void doBeforeRequest(String remoteAddr, RemotingCommand request) {
        counts.computeIfAbsent(name(request.getCode()), k -> new AtomicLong()).incrementAndGet();
        sentAt.put(request.getOpaque(), System.currentTimeMillis());
    }

    @Override
    public void doAfterResponse(String remoteAddr, RemotingCommand request, RemotingCommand response) {
        if (response == null) {
            return;
        }
        Long t0 = sentAt.remove(request.getOpaque());
        counts.computeIfAbsent(name(request.getCode()) + "->" + response.getCode(), k -> new AtomicLong())
            .incrementAndGet();
        last.put(request.getCode(), response);
        if (!emit || !REPORTED.contains(request.getCode())) {
            return;
        }
        boolean bodyless = response.getBody() == null || response.getBody().length == 0;
        if (request.getCode() == POP_MESSAGE && bodyless && emptyPops.incrementAndGet() > MAX_EMPTY_POPS) {
            return;
        }
        Map<String, Object> ev = Common.obj("event", "rpc", "code", request.getCode(), "name", name(request.getCode()),
            "addr", remoteAddr, "req", requestFields(request), "respCode", response.getCode(),
            "remark", response.getRemark(), "resp", fields(response.getExtFields()),
            "bodyLen", response.getBody() == null ? 0 : response.getBody().length,
            "rttMs", t0 == null ? null : System.currentTimeMillis() - t0);
        if (request.getBody() != null && request.getCode() != POP_MESSAGE) {
            ev.put("reqBody", new String(request.getBody(), java.nio.charset.StandardCharsets.UTF_8));
        }
        if (request.getCode() == QUERY_ASSIGNMENT && response.getBody() != null) {
            ev.put("respBody", new String(response.getBody(), java.nio.charset.StandardCharsets.UTF_8));
        }
        Common.emit(ev);
    }

    /** The request's header fields as they go on the wire. */
    static Map<String, Object> requestFields(RemotingCommand request) {
        try {
            request.makeCustomHeaderToNet();
        } catch (RuntimeException e) {
            // leave what is there
        }
        return fields(request.getExtFields());
    }

    static Map<String, Object> fields(Map<String, String> ext) {
        Map<String, Object> m = new TreeMap<>();
        if (ext != null) {
            m.putAll(ext);
        }
        return m;
    }

    Map<String, Object> counts() {
        Map<String, Object> m = new TreeMap<>();
        for (Map.Entry<String, AtomicLong> e : counts.entrySet()) {
            m.put(e.getKey(), e.getValue().get());
        }
        return m;
    }

    long count(String key) {
        AtomicLong n = counts.get(key);
        return n == null ? 0 : n.get();
    }

    RemotingCommand last(int code) {
        return last.get(code);
    }

    void forget(int code) {
        last.remove(code);
    }

    static Map<String, Object> describe(RemotingCommand response) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("code", response.getCode());
        m.put("remark", response.getRemark());
        m.put("ext", fields(response.getExtFields()));
        return m;
    }
}
