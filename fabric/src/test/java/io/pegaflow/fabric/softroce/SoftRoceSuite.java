package io.pegaflow.fabric.softroce;

import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectPackage;

import io.pegaflow.fabric.cli.Main;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.platform.engine.DiscoverySelector;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.launcher.listeners.SummaryGeneratingListener;
import org.junit.platform.launcher.listeners.TestExecutionSummary;

/**
 * The Soft-RoCE VM's one JVM ({@code transport-rdma/vm/guest-suite.sh}): {@code ./pegaflow rdma-check} on the NIC, then
 * JUnit over the packages and classes named ({@code io.pegaflow.rdma} and {@link RdmaCrossNodeLoadCheck}, say).
 *
 * <p>{@code SoftRoceSuite [--require-device] [--nic DEV:PORT:GID] SELECTOR...}: a selector with an upper-case last part
 * is a class, else a package. With {@code --require-device} rdma-check must pass and a test skipped by an assumption
 * counts as a failure: a VM run must exercise verbs, not skip them. Exit 0 only when everything passed.
 */
public final class SoftRoceSuite {
    private SoftRoceSuite() {}

    public static void main(String[] args) {
        boolean requireDevice = false;
        String nic = "rxe0:1:1";
        List<DiscoverySelector> selectors = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--require-device" -> requireDevice = true;
                case "--nic" -> nic = args[++i];
                default -> {
                    String last = args[i].substring(args[i].lastIndexOf('.') + 1);
                    selectors.add(
                            Character.isUpperCase(last.charAt(0)) ? selectClass(args[i]) : selectPackage(args[i]));
                }
            }
        }
        System.out.println("== ./pegaflow rdma-check --nic " + nic);
        int check = Main.run(new String[] {"rdma-check", "--nic", nic}, System.out, System.err);
        System.out.println("== rdma-check exit " + check);
        if (requireDevice && check != 0) {
            System.out.println("FAILED: rdma-check found problems on " + nic + " (see above)");
            System.exit(1);
        }

        AtomicInteger aborted = new AtomicInteger();
        TestExecutionListener progress = new TestExecutionListener() {
            @Override
            public void executionSkipped(TestIdentifier id, String reason) {
                System.out.println("SKIPPED " + id.getLegacyReportingName() + ": " + reason);
            }

            @Override
            public void executionStarted(TestIdentifier id) {
                if (id.isTest()) {
                    System.out.println("START " + id.getLegacyReportingName());
                }
            }

            @Override
            public void executionFinished(TestIdentifier id, TestExecutionResult result) {
                if (result.getStatus() == TestExecutionResult.Status.ABORTED) {
                    aborted.incrementAndGet();
                }
                if (id.isTest() || result.getStatus() != TestExecutionResult.Status.SUCCESSFUL) {
                    System.out.println(result.getStatus() + " " + id.getLegacyReportingName()
                            + result.getThrowable().map(t -> ": " + t).orElse(""));
                }
            }
        };
        SummaryGeneratingListener summary = new SummaryGeneratingListener();
        LauncherFactory.create()
                .execute(
                        LauncherDiscoveryRequestBuilder.request()
                                .selectors(selectors)
                                .build(),
                        summary,
                        progress);
        TestExecutionSummary s = summary.getSummary();
        PrintWriter out = new PrintWriter(System.out, true);
        s.printTo(out);
        s.printFailuresTo(out, 40);
        boolean failed =
                s.getTotalFailureCount() > 0 || s.getTestsFoundCount() == 0 || (requireDevice && aborted.get() > 0);
        if (requireDevice && aborted.get() > 0) {
            out.println("FAILED: " + aborted.get() + " test(s) skipped by an assumption where a device is required");
        }
        out.println(failed ? "SOFTROCE SUITE FAILED" : "SOFTROCE SUITE PASSED");
        // Node threads (Pekko, gRPC) may linger: the exit code is the verdict.
        System.exit(failed ? 1 : 0);
    }
}
