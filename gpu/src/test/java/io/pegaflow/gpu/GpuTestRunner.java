package io.pegaflow.gpu;

import static org.junit.platform.engine.discovery.DiscoverySelectors.selectPackage;

import java.io.PrintWriter;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.launcher.listeners.SummaryGeneratingListener;
import org.junit.platform.launcher.listeners.TestExecutionSummary;

/**
 * Runs this module's tests where there is no Maven (the GPU machine): {@code java -cp test-classes:classes:junit jars
 * io.pegaflow.gpu.GpuTestRunner [--require-gpu]}. Prints the summary and every failure; exits 1 on a failure, and
 * with {@code --require-gpu} also when tests were skipped (a GPU machine must run the CUDA tests, not skip them).
 */
public final class GpuTestRunner {
    private GpuTestRunner() {}

    public static void main(String[] args) {
        boolean requireGpu = args.length > 0 && args[0].equals("--require-gpu");
        LauncherDiscoveryRequest request = LauncherDiscoveryRequestBuilder.request()
                .selectors(selectPackage("io.pegaflow.gpu"))
                .build();
        Launcher launcher = LauncherFactory.create();
        SummaryGeneratingListener listener = new SummaryGeneratingListener();
        launcher.execute(request, listener);
        TestExecutionSummary summary = listener.getSummary();
        PrintWriter out = new PrintWriter(System.out, true);
        summary.printTo(out);
        summary.printFailuresTo(out, 30);
        boolean skipped = summary.getTestsSkippedCount() + summary.getTestsAbortedCount() > 0;
        System.exit(summary.getTotalFailureCount() > 0 || (requireGpu && skipped) ? 1 : 0);
    }
}
