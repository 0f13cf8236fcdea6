package io.pegaflow.config;

import io.pegaflow.config.YamlNode.Entry;
import io.pegaflow.config.YamlNode.Mapping;
import io.pegaflow.config.YamlNode.Scalar;
import io.pegaflow.config.YamlNode.ScalarType;
import io.pegaflow.config.YamlNode.Sequence;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * Checks a YAML tree against the topology format and builds the {@link Topology}, reporting every
 * problem (not just the first) to a {@link Problems}. One instance per file; not thread-safe.
 */
final class TopologyValidator {

    static final List<String> TOP_KEYS = List.of("cluster", "directoryRanges", "nodes");
    static final List<String> NODE_KEYS =
            List.of("id", "host", "clusterPort", "grpcPort", "metricsPort", "poolSize", "transport", "gpus", "rdma");
    static final List<String> NIC_KEYS = List.of("device", "port", "gidIndex");

    /**
     * Cluster names become Pekko ActorSystem names, which allow word characters plus a non-leading
     * {@code -} or {@code _}; node ids follow the same rule.
     */
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_-]*");

    private static final String NAME_RULE = "letters, digits, - and _, not starting with - or _";
    /** A quoted integer, {@code "25521"}, is accepted where an integer is expected. */
    private static final Pattern DECIMAL = Pattern.compile("[+-]?[0-9]+");

    private static final int MAX_DIRECTORY_RANGES = 65536;
    private static final int MAX_PORT = 65535;
    private static final int MAX_NIC_PORT = 255;
    private static final int MAX_GID_INDEX = 255;

    private final Problems problems;
    /** Node id to the path of the node that first used it. */
    private final Map<String, String> idOwners = new HashMap<>();
    /** {@code host port} (host in lower case) to the path of the first port setting that used it. */
    private final Map<String, String> portOwners = new HashMap<>();

    TopologyValidator(Problems problems) {
        this.problems = problems;
    }

    /** @return the topology, or null when any problem was found */
    Topology validate(YamlNode root) {
        if (!(root instanceof Mapping top)) {
            problems.add(
                    TopologyLoader.FILE_PATH,
                    root.line(),
                    "expected a mapping with keys " + String.join(", ", TOP_KEYS) + ", found " + root.kind());
            return null;
        }
        checkKeys(top, "", TOP_KEYS);

        String cluster = null;
        Entry clusterEntry = required(top, "", "cluster");
        if (clusterEntry != null) {
            cluster = name(clusterEntry.value(), "cluster", clusterEntry.keyLine());
        }

        Integer directoryRanges = Topology.DEFAULT_DIRECTORY_RANGES;
        Entry rangesEntry = optional(top, "directoryRanges");
        if (rangesEntry != null) {
            directoryRanges = intIn(
                    rangesEntry.value(),
                    "directoryRanges",
                    rangesEntry.keyLine(),
                    1,
                    MAX_DIRECTORY_RANGES,
                    "is out of range (1.." + MAX_DIRECTORY_RANGES + ")");
        }

        List<NodeSpec> nodes = new ArrayList<>();
        Optional<Entry> nodesEntry = top.entry("nodes");
        if (nodesEntry.isEmpty()) {
            problems.add("nodes", 0, "must be a non-empty list");
        } else if (!(nodesEntry.get().value() instanceof Sequence list)) {
            YamlNode value = nodesEntry.get().value();
            problems.add(
                    "nodes",
                    nodesEntry.get().keyLine(),
                    isNull(value) ? "must be a non-empty list" : "must be a non-empty list, found " + value.kind());
        } else if (list.items().isEmpty()) {
            problems.add("nodes", nodesEntry.get().keyLine(), "must be a non-empty list");
        } else {
            for (int i = 0; i < list.items().size(); i++) {
                NodeSpec node = node(
                        list.items().get(i),
                        "nodes[" + i + "]",
                        nodesEntry.get().keyLine());
                if (node != null) {
                    nodes.add(node);
                }
            }
        }
        return problems.isEmpty() ? new Topology(cluster, directoryRanges, nodes) : null;
    }

    private NodeSpec node(YamlNode value, String path, int listLine) {
        if (!(value instanceof Mapping node)) {
            problems.add(
                    path,
                    lineOr(value, listLine),
                    "expected a mapping with keys " + String.join(", ", NODE_KEYS) + ", found " + value.kind());
            return null;
        }
        int problemsBefore = problems.count();
        checkKeys(node, path, NODE_KEYS);

        String id = null;
        Entry idEntry = required(node, path, "id");
        if (idEntry != null) {
            id = name(idEntry.value(), path + ".id", idEntry.keyLine());
            if (id != null) {
                String owner = idOwners.putIfAbsent(id, path);
                if (owner != null) {
                    problems.add(
                            path + ".id",
                            idEntry.keyLine(),
                            "duplicate id " + Quoting.quote(id) + " (also " + owner + ")");
                }
            }
        }

        String host = null;
        Entry hostEntry = required(node, path, "host");
        if (hostEntry != null) {
            host = host(hostEntry.value(), path + ".host", hostEntry.keyLine());
        }

        Integer clusterPort = port(node, path, "clusterPort", host);
        Integer grpcPort = port(node, path, "grpcPort", host);
        Integer metricsPort = port(node, path, "metricsPort", host);

        Long poolSizeBytes = null;
        Entry sizeEntry = required(node, path, "poolSize");
        if (sizeEntry != null) {
            poolSizeBytes = size(sizeEntry.value(), path + ".poolSize", sizeEntry.keyLine());
        }

        Transport transport = Transport.TCP;
        Entry transportEntry = optional(node, "transport");
        if (transportEntry != null) {
            transport = transport(transportEntry.value(), path + ".transport", transportEntry.keyLine());
        }

        List<Integer> gpus = gpus(node, path);

        List<RdmaNic> nics = new ArrayList<>();
        int nicEntries = nics(node, path, nics);
        if (transport == Transport.RDMA && nicEntries == 0) {
            problems.add(
                    path + ".transport", transportEntry.keyLine(), "rdma needs at least one NIC listed under rdma");
        }

        if (problems.count() != problemsBefore) {
            return null;
        }
        return new NodeSpec(id, host, clusterPort, grpcPort, metricsPort, gpus, nics, poolSizeBytes, transport);
    }

    /** A port setting of a node, claimed on {@code host} (when the host is valid) so clashes are caught. */
    private Integer port(Mapping node, String nodePath, String key, String host) {
        Entry entry = required(node, nodePath, key);
        if (entry == null) {
            return null;
        }
        String path = nodePath + "." + key;
        Integer port = intIn(entry.value(), path, entry.keyLine(), 1, MAX_PORT, "is not a port (1.." + MAX_PORT + ")");
        if (port != null && host != null) {
            String owner = portOwners.putIfAbsent(host.toLowerCase(Locale.ROOT) + " " + port, path);
            if (owner != null) {
                problems.add(path, entry.keyLine(), "port " + port + " on " + host + " already used by " + owner);
            }
        }
        return port;
    }

    private List<Integer> gpus(Mapping node, String nodePath) {
        List<Integer> gpus = new ArrayList<>();
        Entry entry = optional(node, "gpus");
        if (entry == null) {
            return gpus;
        }
        String path = nodePath + ".gpus";
        if (!(entry.value() instanceof Sequence list)) {
            problems.add(
                    path,
                    entry.keyLine(),
                    "expected a list of GPU device indices, found "
                            + entry.value().kind());
            return gpus;
        }
        Map<Integer, Integer> firstIndexOfDevice = new HashMap<>();
        for (int i = 0; i < list.items().size(); i++) {
            YamlNode item = list.items().get(i);
            String itemPath = path + "[" + i + "]";
            int line = lineOr(item, entry.keyLine());
            Integer device = intIn(item, itemPath, line, 0, Integer.MAX_VALUE, "is not a GPU device index (0 or more)");
            if (device == null) {
                continue;
            }
            Integer first = firstIndexOfDevice.putIfAbsent(device, i);
            if (first != null) {
                problems.add(itemPath, line, "duplicate device " + device + " (also gpus[" + first + "])");
            } else {
                gpus.add(device);
            }
        }
        return gpus;
    }

    /**
     * Reads the node's {@code rdma} list into {@code nics}.
     *
     * @return how many entries the list has, valid or not
     */
    private int nics(Mapping node, String nodePath, List<RdmaNic> nics) {
        Entry entry = optional(node, "rdma");
        if (entry == null) {
            return 0;
        }
        String path = nodePath + ".rdma";
        if (!(entry.value() instanceof Sequence list)) {
            problems.add(
                    path,
                    entry.keyLine(),
                    "expected a list of NICs (device, port, gidIndex), found "
                            + entry.value().kind());
            return 1;
        }
        Map<String, Integer> firstIndexOfNic = new HashMap<>();
        for (int i = 0; i < list.items().size(); i++) {
            YamlNode item = list.items().get(i);
            String itemPath = path + "[" + i + "]";
            if (!(item instanceof Mapping nic)) {
                problems.add(
                        itemPath,
                        lineOr(item, entry.keyLine()),
                        "expected a mapping with keys " + String.join(", ", NIC_KEYS) + ", found " + item.kind());
                continue;
            }
            checkKeys(nic, itemPath, NIC_KEYS);
            String device = null;
            Entry deviceEntry = required(nic, itemPath, "device");
            if (deviceEntry != null) {
                device = string(deviceEntry.value(), itemPath + ".device", deviceEntry.keyLine());
                if (device != null && device.isBlank()) {
                    problems.add(itemPath + ".device", deviceEntry.keyLine(), "must not be empty");
                    device = null;
                }
            }
            Integer port = null;
            Entry portEntry = required(nic, itemPath, "port");
            if (portEntry != null) {
                port = intIn(
                        portEntry.value(),
                        itemPath + ".port",
                        portEntry.keyLine(),
                        1,
                        MAX_NIC_PORT,
                        "is not a NIC port (1.." + MAX_NIC_PORT + ")");
            }
            Integer gidIndex = null;
            Entry gidEntry = required(nic, itemPath, "gidIndex");
            if (gidEntry != null) {
                gidIndex = intIn(
                        gidEntry.value(),
                        itemPath + ".gidIndex",
                        gidEntry.keyLine(),
                        0,
                        MAX_GID_INDEX,
                        "is not a GID index (0.." + MAX_GID_INDEX + ")");
            }
            if (device == null || port == null || gidIndex == null) {
                continue;
            }
            Integer first = firstIndexOfNic.putIfAbsent(device + " " + port, i);
            if (first != null) {
                problems.add(
                        itemPath,
                        nic.line(),
                        "duplicate NIC " + device + " port " + port + " (also rdma[" + first + "])");
            } else {
                nics.add(new RdmaNic(device, port, gidIndex));
            }
        }
        return list.items().size();
    }

    // ---- keys ----

    /** Reports keys not in {@code allowed}, and keys given twice. */
    private void checkKeys(Mapping mapping, String path, List<String> allowed) {
        Map<String, Integer> firstLineOfKey = new HashMap<>();
        for (Entry e : mapping.entries()) {
            String keyPath = child(path, e.key());
            Integer first = firstLineOfKey.putIfAbsent(e.key(), e.keyLine());
            if (first != null) {
                problems.add(keyPath, e.keyLine(), "duplicate key (first on line " + first + ")");
            } else if (!allowed.contains(e.key())) {
                problems.add(
                        keyPath,
                        e.keyLine(),
                        "unknown key" + suggestion(e.key(), allowed) + " (allowed: " + String.join(", ", allowed)
                                + ")");
            }
        }
    }

    /** {@code ", did you mean grpcPort?"} for {@code grpc_port} or {@code GRPCPORT}, else empty. */
    private static String suggestion(String key, List<String> allowed) {
        String wanted = normalized(key);
        for (String a : allowed) {
            if (normalized(a).equals(wanted)) {
                return ", did you mean " + a + "?";
            }
        }
        return "";
    }

    private static String normalized(String key) {
        return key.replaceAll("[-_\\s]", "").toLowerCase(Locale.ROOT);
    }

    /** The entry for a required key, or null after reporting it missing (absent, or present with no value). */
    private Entry required(Mapping mapping, String path, String key) {
        Optional<Entry> entry = mapping.entry(key);
        if (entry.isEmpty()) {
            // The mapping's first line points at the node that lacks the key; the top level has no such place.
            problems.add(child(path, key), path.isEmpty() ? 0 : mapping.line(), "missing");
            return null;
        }
        if (isNull(entry.get().value())) {
            problems.add(child(path, key), entry.get().keyLine(), "missing (the key has no value)");
            return null;
        }
        return entry.get();
    }

    /** The entry for an optional key, or null when absent or given no value (the default applies). */
    private static Entry optional(Mapping mapping, String key) {
        return mapping.entry(key).filter(e -> !isNull(e.value())).orElse(null);
    }

    // ---- values; each returns null after reporting a problem ----

    private String string(YamlNode value, String path, int line) {
        if (value instanceof Scalar s && isPlainValue(s)) {
            return s.text();
        }
        problems.add(path, line, "expected a string, found " + value.kind());
        return null;
    }

    private String name(YamlNode value, String path, int line) {
        String text = string(value, path, line);
        if (text == null) {
            return null;
        }
        if (!NAME.matcher(text).matches()) {
            problems.add(path, line, Quoting.quote(text) + " is not a valid name (" + NAME_RULE + ")");
            return null;
        }
        return text;
    }

    private String host(YamlNode value, String path, int line) {
        String text = string(value, path, line);
        if (text == null) {
            return null;
        }
        if (text.isBlank()) {
            problems.add(path, line, "must not be empty");
            return null;
        }
        if (text.chars().anyMatch(Character::isWhitespace)) {
            problems.add(path, line, Quoting.quote(text) + " is not a host (contains whitespace)");
            return null;
        }
        return text;
    }

    private BigInteger integer(YamlNode value, String path, int line) {
        if (value instanceof Scalar s && isPlainValue(s)) {
            if (s.type() == ScalarType.INTEGER) {
                return s.integer();
            }
            if (s.type() == ScalarType.STRING
                    && DECIMAL.matcher(s.text().strip()).matches()) {
                return new BigInteger(s.text().strip());
            }
            problems.add(path, line, s.shown() + " is not an integer");
            return null;
        }
        problems.add(path, line, "expected an integer, found " + value.kind());
        return null;
    }

    /** An integer in {@code min..max}; outside, reports {@code "<value> " + rangeProblem}. */
    private Integer intIn(YamlNode value, String path, int line, int min, int max, String rangeProblem) {
        BigInteger n = integer(value, path, line);
        if (n == null) {
            return null;
        }
        if (n.compareTo(BigInteger.valueOf(min)) < 0 || n.compareTo(BigInteger.valueOf(max)) > 0) {
            problems.add(path, line, ((Scalar) value).shown() + " " + rangeProblem);
            return null;
        }
        return n.intValueExact();
    }

    private Long size(YamlNode value, String path, int line) {
        if (value instanceof Scalar s && isPlainValue(s)) {
            String text = s.type() == ScalarType.INTEGER ? s.integer().toString() : s.text();
            try {
                return ByteSize.parse(text, s.shown());
            } catch (IllegalArgumentException e) {
                problems.add(path, line, e.getMessage());
                return null;
            }
        }
        problems.add(path, line, "expected a size, found " + value.kind());
        return null;
    }

    private Transport transport(YamlNode value, String path, int line) {
        String text = string(value, path, line);
        if (text == null) {
            return null;
        }
        Optional<Transport> transport = Transport.fromYaml(text);
        if (transport.isEmpty()) {
            problems.add(path, line, Quoting.quote(text) + " is not one of rdma, tcp");
            return null;
        }
        return transport.get();
    }

    // ---- helpers ----

    private static boolean isNull(YamlNode value) {
        return value instanceof Scalar s && s.isNull();
    }

    /** Strings, numbers and booleans: scalars that stand for themselves (not null, aliases or binary). */
    private static boolean isPlainValue(Scalar s) {
        return switch (s.type()) {
            case STRING, INTEGER, FLOAT, BOOLEAN -> true;
            case NULL, BINARY, ALIAS -> false;
        };
    }

    private static String child(String path, String key) {
        return path.isEmpty() ? key : path + "." + key;
    }

    private static int lineOr(YamlNode value, int fallback) {
        return value.line() > 0 ? value.line() : fallback;
    }
}
