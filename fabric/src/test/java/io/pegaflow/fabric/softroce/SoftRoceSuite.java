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
 * is a class, else a package. With {@code --require-device} rdma-check must pass and a test skipped for lack of a
 * device counts as a failure: a VM run must exercise verbs, not skip them. Exit 0 only when everything passed.
 */
public final class SoftRoceSuite {
    private SoftRoceSuite() {}

    /** After {@code -Dpegaflow.softroce.dumpAfterS} (240) seconds, every thread's stack: where a slow VM run is stuck. */
    private static void dumpWhenStuck() {
        try {
            Thread.sleep(Long.getLong("pegaflow.softroce.dumpAfterS", 240) * 1000);
        } catch (InterruptedException done) {
            return;
        }
        StringBuilder dump = new StringBuilder("== thread dump (the suite is still running)\n");
        Thread.getAllStackTraces().forEach((t, stack) -> {
            dump.append('"')
                    .append(t.getName())
                    .append("\" ")
                    .append(t.getState())
                    .append('\n');
            for (StackTraceElement e : stack) {
                dump.append("    at ").append(e).append('\n');
            }
        });
        System.out.println(dump);
    }

    /**
     * A skip because the probe found no device (TestNic's reason), not one for a capability the transport does not
     * claim (the contract suite's own assumptions, e.g. "the transport does not verify checksums").
     */
    private static boolean forLackOfADevice(TestExecutionResult result) {
        String why =
                result.getThrowable().map(t -> String.valueOf(t.getMessage())).orElse("");
        return why.contains("no RDMA device") || why.contains("Soft-RoCE VM");
    }

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
                if (result.getStatus() == TestExecutionResult.Status.ABORTED && forLackOfADevice(result)) {
                    aborted.incrementAndGet();
                }
                if (id.isTest() || result.getStatus() != TestExecutionResult.Status.SUCCESSFUL) {
                    System.out.println(result.getStatus() + " " + id.getLegacyReportingName()
                            + result.getThrowable().map(t -> ": " + t).orElse(""));
                }
            }
        };
        // One launch per selector, in the order given (JUnit would sort the classes by name): the transport's own
        // tests first, so their verdict is in the log even if a later, heavier check runs out of time.
        long failures = 0;
        long found = 0;
        PrintWriter out = new PrintWriter(System.out, true);
        Thread watchdog = Thread.ofPlatform().daemon().name("softroce-watchdog").start(SoftRoceSuite::dumpWhenStuck);
        for (DiscoverySelector selector : selectors) {
            SummaryGeneratingListener summary = new SummaryGeneratingListener();
            System.out.println("== " + selector);
            LauncherFactory.create()
                    .execute(
                            LauncherDiscoveryRequestBuilder.request()
                                    .selectors(selector)
                                    .build(),
                            summary,
                            progress);
            TestExecutionSummary s = summary.getSummary();
            s.printTo(out);
            s.printFailuresTo(out, 40);
            failures += s.getTotalFailureCount();
            found += s.getTestsFoundCount();
        }
        watchdog.interrupt();
        boolean failed = failures > 0 || found == 0 || (requireDevice && aborted.get() > 0);
        if (requireDevice && aborted.get() > 0) {
            out.println("FAILED: " + aborted.get() + " test(s) skipped for lack of a device where one is required");
        }
        out.println(failed ? "SOFTROCE SUITE FAILED" : "SOFTROCE SUITE PASSED");
        // Node threads (Pekko, gRPC) may linger: the exit code is the verdict.
        System.exit(failed ? 1 : 0);
    }
}
