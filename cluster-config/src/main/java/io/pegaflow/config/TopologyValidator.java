package io.pegaflow.config;

import io.pegaflow.config.YamlNodes.ScalarType;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;
import org.yaml.snakeyaml.nodes.MappingNode;
import org.yaml.snakeyaml.nodes.Node;
import org.yaml.snakeyaml.nodes.NodeTuple;
import org.yaml.snakeyaml.nodes.ScalarNode;
import org.yaml.snakeyaml.nodes.SequenceNode;

/**
 * Checks a YAML tree (SnakeYAML's nodes, from {@link YamlReader}) against the topology format and builds the {@link Topology}, reporting every
 * problem (not just the first) to a {@link Problems}. One instance per file; not thread-safe.
 */
final class TopologyValidator {

    static final List<String> TOP_KEYS = List.of("cluster", "directoryRanges", "nodes");
    static final List<String> NODE_KEYS = List.of(
            "id",
            "host",
            "clusterPort",
            "grpcPort",
            "metricsPort",
            "transportPort",
            "poolSize",
            "transport",
            "gpus",
            "rdma",
            "transportFallback");
    static final List<String> NIC_REQUIRED_KEYS = List.of("device", "port", "gidIndex");
    static final List<String> NIC_KEYS = List.of("device", "port", "gidIndex", "qpsPerPeer", "queueDepth");

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
    Topology validate(Node root) {
        if (!(root instanceof MappingNode top)) {
            problems.add(
                    TopologyLoader.FILE_PATH,
                    YamlNodes.line(root),
                    "expected a mapping with keys " + String.join(", ", TOP_KEYS) + ", found " + YamlNodes.kind(root));
            return null;
        }
        checkKeys(top, "", TOP_KEYS);

        String cluster = null;
        NodeTuple clusterEntry = required(top, "", "cluster");
        if (clusterEntry != null) {
            cluster = name(clusterEntry.getValueNode(), "cluster", YamlNodes.keyLine(clusterEntry));
        }

        Integer directoryRanges = Topology.DEFAULT_DIRECTORY_RANGES;
        NodeTuple rangesEntry = optional(top, "directoryRanges");
        if (rangesEntry != null) {
            directoryRanges = intIn(
                    rangesEntry.getValueNode(),
                    "directoryRanges",
                    YamlNodes.keyLine(rangesEntry),
                    1,
                    MAX_DIRECTORY_RANGES,
                    "is out of range (1.." + MAX_DIRECTORY_RANGES + ")");
        }

        List<NodeSpec> nodes = new ArrayList<>();
        Optional<NodeTuple> nodesEntry = YamlNodes.entry(top, "nodes");
        if (nodesEntry.isEmpty()) {
            problems.add("nodes", 0, "must be a non-empty list");
        } else if (!(nodesEntry.get().getValueNode() instanceof SequenceNode list)) {
            Node value = nodesEntry.get().getValueNode();
            problems.add(
                    "nodes",
                    YamlNodes.keyLine(nodesEntry.get()),
                    isNull(value)
                            ? "must be a non-empty list"
                            : "must be a non-empty list, found " + YamlNodes.kind(value));
        } else if (list.getValue().isEmpty()) {
            problems.add("nodes", YamlNodes.keyLine(nodesEntry.get()), "must be a non-empty list");
        } else {
            for (int i = 0; i < list.getValue().size(); i++) {
                NodeSpec node = node(list.getValue().get(i), "nodes[" + i + "]", YamlNodes.keyLine(nodesEntry.get()));
                if (node != null) {
                    nodes.add(node);
                }
            }
        }
        return problems.isEmpty() ? new Topology(cluster, directoryRanges, nodes) : null;
    }

    private NodeSpec node(Node value, String path, int listLine) {
        if (!(value instanceof MappingNode node)) {
            problems.add(
                    path,
                    lineOr(value, listLine),
                    "expected a mapping with keys " + String.join(", ", NODE_KEYS) + ", found "
                            + YamlNodes.kind(value));
            return null;
        }
        int problemsBefore = problems.count();
        checkKeys(node, path, NODE_KEYS);

        String id = null;
        NodeTuple idEntry = required(node, path, "id");
        if (idEntry != null) {
            id = name(idEntry.getValueNode(), path + ".id", YamlNodes.keyLine(idEntry));
            if (id != null) {
                String owner = idOwners.putIfAbsent(id, path);
                if (owner != null) {
                    problems.add(
                            path + ".id",
                            YamlNodes.keyLine(idEntry),
                            "duplicate id " + Quoting.quote(id) + " (also " + owner + ")");
                }
            }
        }

        String host = null;
        NodeTuple hostEntry = required(node, path, "host");
        if (hostEntry != null) {
            host = host(hostEntry.getValueNode(), path + ".host", YamlNodes.keyLine(hostEntry));
        }

        Integer clusterPort = port(node, path, "clusterPort", host);
        Integer grpcPort = port(node, path, "grpcPort", host);
        Integer metricsPort = port(node, path, "metricsPort", host);
        Integer transportPort = transportPort(node, path, host, clusterPort);

        Long poolSizeBytes = null;
        NodeTuple sizeEntry = required(node, path, "poolSize");
        if (sizeEntry != null) {
            poolSizeBytes = size(sizeEntry.getValueNode(), path + ".poolSize", YamlNodes.keyLine(sizeEntry));
        }

        Transport transport = Transport.TCP;
        NodeTuple transportEntry = optional(node, "transport");
        if (transportEntry != null) {
            transport =
                    transport(transportEntry.getValueNode(), path + ".transport", YamlNodes.keyLine(transportEntry));
        }

        TransportFallback fallback = TransportFallback.NONE;
        NodeTuple fallbackEntry = optional(node, "transportFallback");
        if (fallbackEntry != null) {
            fallback = fallback(
                    fallbackEntry.getValueNode(), path + ".transportFallback", YamlNodes.keyLine(fallbackEntry));
            if (fallback == TransportFallback.TCP && transport == Transport.TCP) {
                problems.add(
                        path + ".transportFallback",
                        YamlNodes.keyLine(fallbackEntry),
                        "tcp applies to transport: rdma only (this node already uses tcp): remove it");
            }
        }

        List<Integer> gpus = gpus(node, path);

        List<RdmaNic> nics = new ArrayList<>();
        int nicEntries = nics(node, path, nics);
        if (transport == Transport.RDMA && nicEntries == 0) {
            problems.add(
                    path + ".transport",
                    YamlNodes.keyLine(transportEntry),
                    "rdma needs at least one NIC listed under rdma");
        }

        if (problems.count() != problemsBefore) {
            return null;
        }
        return new NodeSpec(
                id,
                host,
                clusterPort,
                grpcPort,
                metricsPort,
                gpus,
                nics,
                poolSizeBytes,
                transport,
                transportPort,
                fallback);
    }

    /**
     * The optional {@code transportPort}; without it {@code clusterPort + 100}, claimed like a written port so a clash
     * with another setting is reported (naming the rule).
     */
    private Integer transportPort(MappingNode node, String nodePath, String host, Integer clusterPort) {
        if (optional(node, "transportPort") != null) {
            return port(node, nodePath, "transportPort", host);
        }
        if (clusterPort == null) {
            return null;
        }
        int port = NodeSpec.defaultTransportPort(clusterPort);
        String path = nodePath + ".transportPort";
        if (port > MAX_PORT) {
            problems.add(
                    path,
                    node.getStartMark().getLine() + 1,
                    "default transport port clusterPort + " + NodeSpec.TRANSPORT_PORT_OFFSET + " = " + port
                            + " is not a port (1.." + MAX_PORT + "): set transportPort");
            return null;
        }
        if (host != null) {
            String owner = portOwners.putIfAbsent(host.toLowerCase(Locale.ROOT) + " " + port, path);
            if (owner != null) {
                problems.add(
                        path,
                        node.getStartMark().getLine() + 1,
                        "default transport port " + port + " (clusterPort + " + NodeSpec.TRANSPORT_PORT_OFFSET + ") on "
                                + host + " already used by " + owner + ": set transportPort");
            }
        }
        return port;
    }

    /** A port setting of a node, claimed on {@code host} (when the host is valid) so clashes are caught. */
    private Integer port(MappingNode node, String nodePath, String key, String host) {
        NodeTuple entry = required(node, nodePath, key);
        if (entry == null) {
            return null;
        }
        String path = nodePath + "." + key;
        Integer port = intIn(
                entry.getValueNode(),
                path,
                YamlNodes.keyLine(entry),
                1,
                MAX_PORT,
                "is not a port (1.." + MAX_PORT + ")");
        if (port != null && host != null) {
            String owner = portOwners.putIfAbsent(host.toLowerCase(Locale.ROOT) + " " + port, path);
            if (owner != null) {
                problems.add(
                        path, YamlNodes.keyLine(entry), "port " + port + " on " + host + " already used by " + owner);
            }
        }
        return port;
    }

    private List<Integer> gpus(MappingNode node, String nodePath) {
        List<Integer> gpus = new ArrayList<>();
        NodeTuple entry = optional(node, "gpus");
        if (entry == null) {
            return gpus;
        }
        String path = nodePath + ".gpus";
        if (!(entry.getValueNode() instanceof SequenceNode list)) {
            problems.add(
                    path,
                    YamlNodes.keyLine(entry),
                    "expected a list of GPU device indices, found " + YamlNodes.kind(entry.getValueNode()));
            return gpus;
        }
        Map<Integer, Integer> firstIndexOfDevice = new HashMap<>();
        for (int i = 0; i < list.getValue().size(); i++) {
            Node item = list.getValue().get(i);
            String itemPath = path + "[" + i + "]";
            int line = lineOr(item, YamlNodes.keyLine(entry));
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
    private int nics(MappingNode node, String nodePath, List<RdmaNic> nics) {
        NodeTuple entry = optional(node, "rdma");
        if (entry == null) {
            return 0;
        }
        String path = nodePath + ".rdma";
        if (!(entry.getValueNode() instanceof SequenceNode list)) {
            problems.add(
                    path,
                    YamlNodes.keyLine(entry),
                    "expected a list of NICs (device, port, gidIndex), found " + YamlNodes.kind(entry.getValueNode()));
            return 1;
        }
        Map<String, Integer> firstIndexOfNic = new HashMap<>();
        for (int i = 0; i < list.getValue().size(); i++) {
            Node item = list.getValue().get(i);
            String itemPath = path + "[" + i + "]";
            if (!(item instanceof MappingNode nic)) {
                problems.add(
                        itemPath,
                        lineOr(item, YamlNodes.keyLine(entry)),
                        "expected a mapping with keys " + String.join(", ", NIC_REQUIRED_KEYS) + ", found "
                                + YamlNodes.kind(item));
                continue;
            }
            checkKeys(nic, itemPath, NIC_KEYS);
            String device = null;
            NodeTuple deviceEntry = required(nic, itemPath, "device");
            if (deviceEntry != null) {
                device = string(deviceEntry.getValueNode(), itemPath + ".device", YamlNodes.keyLine(deviceEntry));
                if (device != null && device.isBlank()) {
                    problems.add(itemPath + ".device", YamlNodes.keyLine(deviceEntry), "must not be empty");
                    device = null;
                }
            }
            Integer port = null;
            NodeTuple portEntry = required(nic, itemPath, "port");
            if (portEntry != null) {
                port = intIn(
                        portEntry.getValueNode(),
                        itemPath + ".port",
                        YamlNodes.keyLine(portEntry),
                        1,
                        MAX_NIC_PORT,
                        "is not a NIC port (1.." + MAX_NIC_PORT + ")");
            }
            Integer gidIndex = null;
            NodeTuple gidEntry = required(nic, itemPath, "gidIndex");
            if (gidEntry != null) {
                gidIndex = intIn(
                        gidEntry.getValueNode(),
                        itemPath + ".gidIndex",
                        YamlNodes.keyLine(gidEntry),
                        0,
                        MAX_GID_INDEX,
                        "is not a GID index (0.." + MAX_GID_INDEX + ")");
            }
            Integer qpsPerPeer = optionalIntIn(
                    nic,
                    itemPath,
                    "qpsPerPeer",
                    RdmaNic.DEFAULT_QPS_PER_PEER,
                    RdmaNic.MIN_QPS_PER_PEER,
                    RdmaNic.MAX_QPS_PER_PEER,
                    "is not a queue pair count per peer (" + RdmaNic.MIN_QPS_PER_PEER + ".." + RdmaNic.MAX_QPS_PER_PEER
                            + ")");
            Integer queueDepth = optionalIntIn(
                    nic,
                    itemPath,
                    "queueDepth",
                    RdmaNic.DEFAULT_QUEUE_DEPTH,
                    RdmaNic.MIN_QUEUE_DEPTH,
                    RdmaNic.MAX_QUEUE_DEPTH,
                    "is not a queue depth (" + RdmaNic.MIN_QUEUE_DEPTH + ".." + RdmaNic.MAX_QUEUE_DEPTH
                            + " send work requests per queue pair)");
            if (device == null || port == null || gidIndex == null || qpsPerPeer == null || queueDepth == null) {
                continue;
            }
            Integer first = firstIndexOfNic.putIfAbsent(device + " " + port, i);
            if (first != null) {
                problems.add(
                        itemPath,
                        YamlNodes.line(nic),
                        "duplicate NIC " + device + " port " + port + " (also rdma[" + first + "])");
            } else {
                nics.add(new RdmaNic(device, port, gidIndex, qpsPerPeer, queueDepth));
            }
        }
        return list.getValue().size();
    }

    /** An optional integer key of a NIC entry: its value in [min, max], {@code absent} without it, null if bad. */
    private Integer optionalIntIn(
            MappingNode nic, String itemPath, String key, int absent, int min, int max, String rangeProblem) {
        NodeTuple entry = optional(nic, key);
        if (entry == null) {
            return absent;
        }
        return intIn(entry.getValueNode(), itemPath + "." + key, YamlNodes.keyLine(entry), min, max, rangeProblem);
    }

    // ---- keys ----

    /** Reports keys not in {@code allowed}, and keys given twice. */
    private void checkKeys(MappingNode mapping, String path, List<String> allowed) {
        Map<String, Integer> firstLineOfKey = new HashMap<>();
        for (NodeTuple e : mapping.getValue()) {
            String keyPath = child(path, YamlNodes.key(e));
            Integer first = firstLineOfKey.putIfAbsent(YamlNodes.key(e), YamlNodes.keyLine(e));
            if (first != null) {
                problems.add(keyPath, YamlNodes.keyLine(e), "duplicate key (first on line " + first + ")");
            } else if (!allowed.contains(YamlNodes.key(e))) {
                problems.add(
                        keyPath,
                        YamlNodes.keyLine(e),
                        "unknown key" + suggestion(YamlNodes.key(e), allowed) + " (allowed: "
                                + String.join(", ", allowed) + ")");
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
    private NodeTuple required(MappingNode mapping, String path, String key) {
        Optional<NodeTuple> entry = YamlNodes.entry(mapping, key);
        if (entry.isEmpty()) {
            // The mapping's first line points at the node that lacks the key; the top level has no such place.
            problems.add(child(path, key), path.isEmpty() ? 0 : YamlNodes.line(mapping), "missing");
            return null;
        }
        if (isNull(entry.get().getValueNode())) {
            problems.add(child(path, key), YamlNodes.keyLine(entry.get()), "missing (the key has no value)");
            return null;
        }
        return entry.get();
    }

    /** The entry for an optional key, or null when absent or given no value (the default applies). */
    private static NodeTuple optional(MappingNode mapping, String key) {
        return YamlNodes.entry(mapping, key)
                .filter(e -> !isNull(e.getValueNode()))
                .orElse(null);
    }

    // ---- values; each returns null after reporting a problem ----

    private String string(Node value, String path, int line) {
        if (value instanceof ScalarNode s && isPlainValue(s)) {
            return s.getValue();
        }
        problems.add(path, line, "expected a string, found " + YamlNodes.kind(value));
        return null;
    }

    private String name(Node value, String path, int line) {
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

    private String host(Node value, String path, int line) {
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

    private BigInteger integer(Node value, String path, int line) {
        if (value instanceof ScalarNode s && isPlainValue(s)) {
            if (YamlNodes.type(s) == ScalarType.INTEGER) {
                return YamlNodes.integer(s);
            }
            if (YamlNodes.type(s) == ScalarType.STRING
                    && DECIMAL.matcher(s.getValue().strip()).matches()) {
                return new BigInteger(s.getValue().strip());
            }
            problems.add(path, line, YamlNodes.shown(s) + " is not an integer");
            return null;
        }
        problems.add(path, line, "expected an integer, found " + YamlNodes.kind(value));
        return null;
    }

    /** An integer in {@code min..max}; outside, reports {@code "<value> " + rangeProblem}. */
    private Integer intIn(Node value, String path, int line, int min, int max, String rangeProblem) {
        BigInteger n = integer(value, path, line);
        if (n == null) {
            return null;
        }
        if (n.compareTo(BigInteger.valueOf(min)) < 0 || n.compareTo(BigInteger.valueOf(max)) > 0) {
            problems.add(path, line, YamlNodes.shown((ScalarNode) value) + " " + rangeProblem);
            return null;
        }
        return n.intValueExact();
    }

    private Long size(Node value, String path, int line) {
        if (value instanceof ScalarNode s && isPlainValue(s)) {
            String text = YamlNodes.type(s) == ScalarType.INTEGER
                    ? YamlNodes.integer(s).toString()
                    : s.getValue();
            try {
                return ByteSize.parse(text, YamlNodes.shown(s));
            } catch (IllegalArgumentException e) {
                problems.add(path, line, e.getMessage());
                return null;
            }
        }
        problems.add(path, line, "expected a size, found " + YamlNodes.kind(value));
        return null;
    }

    private Transport transport(Node value, String path, int line) {
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

    private TransportFallback fallback(Node value, String path, int line) {
        String text = string(value, path, line);
        if (text == null) {
            return null;
        }
        Optional<TransportFallback> fallback = TransportFallback.fromYaml(text);
        if (fallback.isEmpty()) {
            problems.add(path, line, Quoting.quote(text) + " is not one of none, tcp");
            return null;
        }
        return fallback.get();
    }

    // ---- helpers ----

    private static boolean isNull(Node value) {
        return YamlNodes.isNull(value);
    }

    /** Strings, numbers and booleans: scalars that stand for themselves (not null, aliases or refused tags). */
    private static boolean isPlainValue(ScalarNode s) {
        return switch (YamlNodes.type(s)) {
            case STRING, INTEGER, FLOAT, BOOLEAN -> true;
            case NULL, TAGGED, ALIAS -> false;
        };
    }

    private static String child(String path, String key) {
        return path.isEmpty() ? key : path + "." + key;
    }

    private static int lineOr(Node value, int fallback) {
        return YamlNodes.line(value) > 0 ? YamlNodes.line(value) : fallback;
    }
}
