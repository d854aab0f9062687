package shardmq.interop.common;

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Shared helpers of the Java scenario programs (tests/interop/java and
 * tests/interop/java5, which both compile this directory): option parsing (same
 * options as tests/interop/node and tests/interop/python), JSON lines on
 * stdout (one object per line, sorted keys), diagnostics on stderr, and a
 * watchdog that ends the process (event "timeout", exit code 3).
 */
public final class Common {
    private Common() {}

    private static final PrintStream OUT = new PrintStream(
        new java.io.FileOutputStream(java.io.FileDescriptor.out), true, StandardCharsets.UTF_8);

    /** User properties every producer sets and every consumer reads back. */
    public static final String[] USER_PROPS = {"seq", "prefix", "color", "orderKey", "orderSeq"};

    public static Map<String, Object> obj(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i + 1 < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        return m;
    }

    public static void emit(Map<String, Object> fields) {
        String line = json(fields);
        synchronized (OUT) {
            OUT.println(line);
            OUT.flush();
        }
    }

    public static void log(String msg) {
        synchronized (System.err) {
            System.err.println(msg);
            System.err.flush();
        }
    }

    /** Emits an error event and leaves at once (no shutdown hooks: they can block). */
    public static void fail(String stage, Throwable e, Object... extra) {
        Map<String, Object> m = obj("event", "error", "stage", stage, "error", describe(e));
        for (int i = 0; i + 1 < extra.length; i += 2) {
            m.put((String) extra[i], extra[i + 1]);
        }
        emit(m);
        e.printStackTrace(System.err);
        halt(1);
    }

    /** The exception and its causes, each as "Class: message". */
    public static String describe(Throwable e) {
        StringBuilder s = new StringBuilder(e.getClass().getSimpleName() + ": " + e.getMessage());
        int depth = 0;
        for (Throwable c = e.getCause(); c != null && c != e && depth < 5; c = c.getCause(), depth++) {
            s.append("; caused by ").append(c.getClass().getSimpleName()).append(": ").append(c.getMessage());
        }
        return s.length() > 2000 ? s.substring(0, 2000) : s.toString();
    }

    public static void halt(int code) {
        System.out.flush();
        System.err.flush();
        OUT.flush();
        Runtime.getRuntime().halt(code);
    }

    public static void startWatchdog(long timeoutMs, String what) {
        Thread t = new Thread(() -> {
            try {
                Thread.sleep(timeoutMs);
            } catch (InterruptedException e) {
                return;
            }
            emit(obj("event", "timeout", "what", what, "timeoutMs", timeoutMs));
            log(what + ": watchdog fired after " + timeoutMs + " ms");
            halt(3);
        }, "watchdog");
        t.setDaemon(true);
        t.start();
    }

    /** Parsed {@code --name value} / {@code --flag} options against a spec of defaults. */
    public static final class Opts {
        private final Map<String, String> values = new TreeMap<>();
        private final Map<String, Boolean> flags = new TreeMap<>();

        public Opts(String usage, String[] argv, Map<String, String> spec, String... flagNames) {
            for (String f : flagNames) {
                flags.put(f, false);
            }
            values.putAll(spec);
            try {
                for (int i = 0; i < argv.length; i++) {
                    String a = argv[i];
                    if (!a.startsWith("--")) {
                        throw new IllegalArgumentException("unexpected argument " + a);
                    }
                    String name = a.substring(2);
                    if (flags.containsKey(name)) {
                        flags.put(name, true);
                    } else if (values.containsKey(name)) {
                        if (i + 1 >= argv.length) {
                            throw new IllegalArgumentException("option " + a + " needs a value");
                        }
                        values.put(name, argv[++i]);
                    } else {
                        throw new IllegalArgumentException("unknown option " + a);
                    }
                }
                for (Map.Entry<String, String> e : values.entrySet()) {
                    if (e.getValue() == null) {
                        throw new IllegalArgumentException("--" + e.getKey() + " is required");
                    }
                }
            } catch (IllegalArgumentException e) {
                log(e.getMessage() + "\n" + usage);
                emit(obj("event", "error", "stage", "args", "error", e.getMessage()));
                halt(2);
            }
        }

        public String str(String name) {
            return values.get(name);
        }

        public long num(String name) {
            try {
                return Long.parseLong(values.get(name));
            } catch (NumberFormatException e) {
                emit(obj("event", "error", "stage", "args", "error", "--" + name + ": not a number: " + values.get(name)));
                halt(2);
                return 0;
            }
        }

        public int integer(String name) {
            return (int) num(name);
        }

        public boolean flag(String name) {
            return flags.get(name);
        }
    }

    public static Map<String, String> spec(String... kv) {
        Map<String, String> m = new LinkedHashMap<>();
        for (int i = 0; i + 1 < kv.length; i += 2) {
            m.put(kv[i], kv[i + 1]);
        }
        return m;
    }

    // ---- minimal JSON encoder (sorted object keys) ----------------------------

    public static String json(Object v) {
        StringBuilder sb = new StringBuilder();
        write(sb, v);
        return sb.toString();
    }

    @SuppressWarnings("unchecked")
    private static void write(StringBuilder sb, Object v) {
        if (v == null) {
            sb.append("null");
        } else if (v instanceof String) {
            str(sb, (String) v);
        } else if (v instanceof Number || v instanceof Boolean) {
            sb.append(v);
        } else if (v instanceof Map) {
            Map<String, Object> sorted = new TreeMap<>((Map<String, Object>) v);
            sb.append('{');
            boolean first = true;
            for (Map.Entry<String, Object> e : sorted.entrySet()) {
                if (!first) {
                    sb.append(',');
                }
                first = false;
                str(sb, e.getKey());
                sb.append(':');
                write(sb, e.getValue());
            }
            sb.append('}');
        } else if (v instanceof Collection) {
            sb.append('[');
            boolean first = true;
            for (Object o : (Collection<Object>) v) {
                if (!first) {
                    sb.append(',');
                }
                first = false;
                write(sb, o);
            }
            sb.append(']');
        } else {
            str(sb, v.toString());
        }
    }

    private static void str(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
            }
        }
        sb.append('"');
    }

    public static List<String> list(Collection<?> c) {
        List<String> out = new ArrayList<>();
        for (Object o : c) {
            out.add(String.valueOf(o));
        }
        return out;
    }
}
