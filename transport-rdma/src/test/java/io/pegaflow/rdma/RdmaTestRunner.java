package io.pegaflow.rdma;

import static org.junit.platform.engine.discovery.DiscoverySelectors.selectPackage;

import java.io.PrintWriter;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.launcher.listeners.SummaryGeneratingListener;
import org.junit.platform.launcher.listeners.TestExecutionSummary;

/**
 * Runs this module's tests where there is no Maven (inside the Soft-RoCE VM, whose root filesystem is read-only):
 * {@code java -cp test-classes:classes:deps io.pegaflow.rdma.RdmaTestRunner [--require-device]}. Prints each test's
 * outcome (skips with their reason), the summary and every failure; exits 1 on a failure, and with
 * {@code --require-device} also when the probe finds no device (a VM run must test verbs, not skip them).
 */
public final class RdmaTestRunner {
    private RdmaTestRunner() {}

    public static void main(String[] args) {
        boolean requireDevice = args.length > 0 && args[0].equals("--require-device");
        if (requireDevice && TestNic.settings().isEmpty()) {
            System.out.println("no device: " + TestNic.whyNone());
            System.exit(1);
        }
        LauncherDiscoveryRequest request = LauncherDiscoveryRequestBuilder.request()
                .selectors(selectPackage("io.pegaflow.rdma"))
                .build();
        Launcher launcher = LauncherFactory.create();
        SummaryGeneratingListener summaryListener = new SummaryGeneratingListener();
        TestExecutionListener progress = new TestExecutionListener() {
            @Override
            public void executionSkipped(TestIdentifier id, String reason) {
                System.out.println("SKIPPED " + id.getDisplayName() + ": " + reason);
            }

            @Override
            public void executionFinished(TestIdentifier id, TestExecutionResult result) {
                if (id.isTest()) {
                    System.out.println(result.getStatus() + " " + id.getLegacyReportingName()
                            + result.getThrowable().map(t -> ": " + t).orElse(""));
                }
            }
        };
        launcher.execute(request, summaryListener, progress);
        TestExecutionSummary summary = summaryListener.getSummary();
        PrintWriter out = new PrintWriter(System.out, true);
        summary.printTo(out);
        summary.printFailuresTo(out, 40);
        System.exit(summary.getTotalFailureCount() > 0 ? 1 : 0);
    }
}
