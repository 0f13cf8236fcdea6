package io.pegaflow.fabric.cli;

import io.pegaflow.config.NodeSpec;
import io.pegaflow.config.Topology;
import io.pegaflow.config.TopologyException;
import io.pegaflow.config.TopologyLoader;
import io.pegaflow.proto.fabric.ClusterStatusRequest;
import io.pegaflow.proto.fabric.ClusterStatusResponse;
import io.pegaflow.proto.fabric.FabricClient;
import io.pegaflow.proto.fabric.ShutdownRequest;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code pegaflow demo}: starts every node of a topology as its own JVM, waits until each sees all members Up,
 * prints the status from each node, runs the KV workload (on a cluster of two or more nodes across nodes: saved on
 * the first, a cross-node hit on the second), shuts them all down through the Shutdown RPC and checks they exit 0.
 */
@Command(
        name = "demo",
        mixinStandardHelpOptions = true,
        versionProvider = PegaflowVersion.class,
        sortOptions = false,
        description = {
            "Starts a whole cluster on this machine, runs a KV workload against it, shuts it down.",
            "",
            "Starts every node of the topology as a separate process, waits for the cluster to form, prints the"
                    + " cluster status from each node, runs the KV workload (a Python worker driving vLLM's connector"
                    + " calls: save, hit, load, byte check): the first node saves; with two or more nodes the"
                    + " second node's worker queries with cluster scope and loads the blocks from the first (a"
                    + " cross-node hit, and Locate names both nodes), and one prefill/decode request goes through"
                    + " ./pegaflow proxy (prefill engine on the first node, decode engine on the second); then shuts"
                    + " every node down gracefully and checks that each exits 0."
        },
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {"0:every step passed", "1:a step failed (the node logs are printed)", "2:bad command line"})
final class DemoCommand implements Callable<Integer> {
    private static final Duration CALL_TIMEOUT = Duration.ofSeconds(3);
    private static final List<String> DEMO_JVM_FLAGS = List.of("-Xms64m", "-Xmx384m", "-XX:+UseSerialGC");

    private final PrintStream out;
    private final PrintStream err;

    @Option(
            names = "--topology",
            paramLabel = "FILE",
            defaultValue = "examples/cluster-3node.yaml",
            description = "The cluster to start (default ${DEFAULT-VALUE}).")
    private Path topologyFile;

    @Option(
            names = "--log-dir",
            paramLabel = "DIR",
            defaultValue = "target/demo-logs",
            description = "Where the node logs go (default ${DEFAULT-VALUE}).")
    private Path logDir;

    @Option(
            names = "--timeout-s",
            paramLabel = "N",
            defaultValue = "120",
            converter = IntInRange.FormTimeoutS.class,
            description = "Give up when the cluster has not formed after N s, 5..3600 (default ${DEFAULT-VALUE}).")
    private int formTimeoutS;

    DemoCommand(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    @Override
    public Integer call() throws Exception {
        Main.setRootLogLevel("warn");
        Path topologyFile = this.topologyFile.toAbsolutePath();
        Path logDir = this.logDir.toAbsolutePath();
        Duration formTimeout = Duration.ofSeconds(formTimeoutS);
        Topology topology;
        try {
            topology = TopologyLoader.load(topologyFile);
        } catch (TopologyException e) {
            err.println(e.getMessage());
            return 1;
        }

        List<NodeProcess> nodes = new ArrayList<>();
        Thread reaper = new Thread(() -> nodes.forEach(NodeProcess::close), "demo-reaper");
        Runtime.getRuntime().addShutdownHook(reaper);
        try (FabricClients clients = new FabricClients()) {
            out.printf(
                    "starting %d nodes of cluster %s from %s (logs in %s)%n",
                    topology.nodes().size(), topology.clusterName(), topologyFile, logDir);
            for (NodeSpec node : topology.nodes()) {
                nodes.add(NodeProcess.start(
                        node.id(),
                        DEMO_JVM_FLAGS,
                        List.of("--topology", topologyFile.toString(), "--node", node.id()),
                        logDir));
            }
            Map<String, FabricClient> byNode = new LinkedHashMap<>();
            for (NodeSpec node : topology.nodes()) {
                byNode.put(node.id(), clients.fabric(new HostPort(node.host(), node.grpcPort()), CALL_TIMEOUT));
            }

            long startNs = System.nanoTime();
            Map<String, ClusterStatusResponse> formed = awaitFormed(topology, byNode, nodes, formTimeout, err);
            if (formed == null) {
                err.printf("the cluster did not form within %ds%n", formTimeout.toSeconds());
                dumpLogs(nodes, err);
                return 1;
            }
            out.printf("cluster formed in %.1f s%n%n", (System.nanoTime() - startNs) / 1e9);
            formed.values().forEach(status -> out.println(StatusFormat.table(status)));

            NodeSpec first = topology.nodes().getFirst();
            HostPort saver = new HostPort(first.host(), first.grpcPort());
            HostPort loader = saver;
            if (topology.nodes().size() > 1) {
                NodeSpec second = topology.nodes().get(1);
                loader = new HostPort(second.host(), second.grpcPort());
                out.printf(
                        "KV workload through the vLLM connector (fake scheduler loop, shared-memory KV caches): a worker"
                                + " on node %s saves, a worker on node %s queries with cluster scope and loads the"
                                + " prefix from node %s (cross-node hit):%n",
                        first.id(), second.id(), first.id());
            } else {
                out.printf(
                        "KV workload against node %s through the vLLM connector (fake scheduler loop, shared-memory KV caches):%n",
                        first.id());
            }
            int workload = runWorkload(saver, loader, out, err);
            if (workload != 0) {
                err.printf("the KV workload failed (exit %d)%n", workload);
                dumpLogs(nodes, err);
                return 1;
            }
            out.println();
            if (topology.nodes().size() >= 2 && runPdRequest(topology, out, err) != 0) {
                dumpLogs(nodes, err);
                return 1;
            }

            for (var entry : byNode.entrySet()) {
                entry.getValue()
                        .shutdown(ShutdownRequest.newBuilder()
                                .setReason("demo finished")
                                .setConfirmNodeId(entry.getKey())
                                .build())
                        .toCompletableFuture()
                        .get(CALL_TIMEOUT.toMillis() * 2, TimeUnit.MILLISECONDS);
                out.printf("asked %s to shut down%n", entry.getKey());
            }
            boolean allZero = true;
            for (NodeProcess node : nodes) {
                int code = node.waitForExit(Duration.ofSeconds(60));
                out.printf("node %s exited with %s%n", node.nodeId(), code < 0 ? "no exit within 60 s" : code);
                allZero &= code == 0;
            }
            if (!allZero) {
                dumpLogs(nodes, err);
                return 1;
            }
            out.println("demo ok: every node saw all members Up and exited 0");
            return 0;
        } finally {
            nodes.forEach(NodeProcess::close);
            try {
                Runtime.getRuntime().removeShutdownHook(reaper);
            } catch (IllegalStateException shuttingDown) {
                // already exiting: the hook runs anyway
            }
        }
    }

    /**
     * Runs {@code python3 -m pegaflow_testing.vllm_demo} (python/ of this checkout) against {@code endpoint}: the real
     * PegaKVConnector driven by a vLLM-shaped fake scheduler loop; a first request saves its blocks, a second request
     * with the same prefix from another engine instance (on {@code loader}, with cluster scope when that is another
     * node) hits, loads and verifies every byte.
     */
    private static int runWorkload(HostPort endpoint, HostPort loader, PrintStream out, PrintStream err)
            throws Exception {
        return runPython(
                List.of(
                        "pegaflow_testing.vllm_demo",
                        "--endpoint",
                        endpoint.toString(),
                        "--load-endpoint",
                        loader.toString()),
                out,
                err);
    }

    /**
     * One prefill/decode request across the first two nodes, through {@code ./pegaflow proxy}: {@code python3 -m
     * pegaflow_testing.pd_demo} (stand-in OpenAI servers running the real connector, prefill on the first node,
     * decode on the second).
     */
    private static int runPdRequest(Topology topology, PrintStream out, PrintStream err) throws Exception {
        NodeSpec prefill = topology.nodes().get(0);
        NodeSpec decode = topology.nodes().get(1);
        out.printf(
                "P/D request through ./pegaflow proxy: prefill engine on %s, decode engine on %s:%n",
                prefill.id(), decode.id());
        int code = runPython(
                List.of(
                        "pegaflow_testing.pd_demo",
                        "--prefill-endpoint",
                        new HostPort(prefill.host(), prefill.grpcPort()).toString(),
                        "--decode-endpoint",
                        new HostPort(decode.host(), decode.grpcPort()).toString()),
                out,
                err);
        if (code != 0) {
            err.printf("the P/D request failed (exit %d)%n", code);
        }
        out.println();
        return code;
    }

    /** Runs {@code python3 -m MODULE ARGS...} with this checkout's python/ on the path, its output indented. */
    private static int runPython(List<String> moduleAndArgs, PrintStream out, PrintStream err) throws Exception {
        Path pythonDir = Path.of(System.getenv().getOrDefault("PEGAFLOW_ROOT", "."))
                .toAbsolutePath()
                .resolve("python");
        List<String> command = new ArrayList<>();
        command.add(System.getenv().getOrDefault("PEGAFLOW_PYTHON", "python3")); // ./pegaflow: its .venv
        command.add("-m");
        command.addAll(moduleAndArgs);
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
        builder.environment().merge("PYTHONPATH", pythonDir.toString(), (a, b) -> b + java.io.File.pathSeparator + a);
        Process process;
        try {
            process = builder.start();
        } catch (java.io.IOException e) {
            err.println("cannot start python3 for the workload: " + e.getMessage()
                    + " (install Python 3.10+ with python/requirements-test.txt)");
            return 1;
        }
        try (var lines = new java.io.BufferedReader(
                new java.io.InputStreamReader(process.getInputStream(), java.nio.charset.StandardCharsets.UTF_8))) {
            String line;
            while ((line = lines.readLine()) != null) {
                out.println("  " + line);
            }
        }
        if (!process.waitFor(120, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            return 124;
        }
        return process.exitValue();
    }

    /** Each node's status once every node reports all members Up; null on timeout or when a node died. */
    private static Map<String, ClusterStatusResponse> awaitFormed(
            Topology topology,
            Map<String, FabricClient> byNode,
            List<NodeProcess> nodes,
            Duration timeout,
            PrintStream err)
            throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        int expected = topology.nodes().size();
        while (System.nanoTime() < deadline) {
            for (NodeProcess node : nodes) {
                if (!node.isAlive()) {
                    err.printf(
                            "node %s exited early with %d%n",
                            node.nodeId(), node.process().exitValue());
                    return null;
                }
            }
            Map<String, ClusterStatusResponse> statuses = new LinkedHashMap<>();
            for (var entry : byNode.entrySet()) {
                try {
                    ClusterStatusResponse status = entry.getValue()
                            .clusterStatus(ClusterStatusRequest.getDefaultInstance())
                            .toCompletableFuture()
                            .get(CALL_TIMEOUT.toMillis() + 500, TimeUnit.MILLISECONDS);
                    if (StatusFormat.upCount(status) == expected && status.getMembersCount() == expected) {
                        statuses.put(entry.getKey(), status);
                    }
                } catch (Exception notYet) {
                    // still starting
                }
            }
            if (statuses.size() == expected) {
                return statuses;
            }
            Thread.sleep(500);
        }
        return null;
    }

    private static void dumpLogs(List<NodeProcess> nodes, PrintStream err) {
        for (NodeProcess node : nodes) {
            err.printf("---- last lines of %s (%s) ----%n%s%n", node.nodeId(), node.log(), node.logTail(25));
        }
    }
}
