package io.pegaflow.proxy;

import com.typesafe.config.Config;
import java.io.PrintStream;
import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import org.apache.pekko.actor.ActorSystem;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** {@code pegaflow proxy}: the P/D proxy in the foreground until the process is stopped (SIGTERM, Ctrl-C). */
@Command(
        name = "proxy",
        mixinStandardHelpOptions = true,
        sortOptions = false,
        description = {
            "Serves OpenAI /v1/completions and /v1/chat/completions by prefill/decode disaggregation.",
            "",
            "Each request goes to a prefill engine first (max_tokens=1, not streamed, kv_transfer_params asking for"
                    + " remote decode), then to a decode engine with the kv_transfer_params the prefill engine"
                    + " returned; decode's answer is streamed through (Server-Sent Events when stream=true). Engines"
                    + " are taken round-robin. A leg that fails answers 502 naming it. X-Request-Id goes to both"
                    + " legs. GET /metrics: Prometheus text (per-leg latency); GET /health."
        },
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {"0:stopped", "1:could not start (e.g. the port is taken)", "2:bad command line"})
public final class ProxyCommand implements Callable<Integer> {
    @Spec
    private CommandSpec spec;

    @Option(
            names = "--host",
            paramLabel = "HOST",
            defaultValue = "0.0.0.0",
            description = "Address to listen on (default ${DEFAULT-VALUE}).")
    private String host;

    @Option(
            names = "--port",
            paramLabel = "PORT",
            defaultValue = "8000",
            description = "Port to listen on, 0..65535 (default ${DEFAULT-VALUE}; 0: any free port).")
    private int port;

    @Option(
            names = "--prefill",
            paramLabel = "URL",
            arity = "1..*",
            required = true,
            description = "Prefill engines' base URLs, e.g. http://10.0.0.1:8100 (several: round-robin).")
    private List<String> prefill;

    @Option(
            names = "--decode",
            paramLabel = "URL",
            arity = "1..*",
            required = true,
            description = "Decode engines' base URLs (several: round-robin).")
    private List<String> decode;

    @Option(
            names = "--leg-timeout-s",
            paramLabel = "N",
            defaultValue = "600",
            description = "A leg whose answer has not started after N s fails with 502, 1..86400 (default"
                    + " ${DEFAULT-VALUE}).")
    private int legTimeoutS;

    private final PrintStream out;

    public ProxyCommand() {
        this(System.out);
    }

    public ProxyCommand(PrintStream out) {
        this.out = out;
    }

    @Override
    public Integer call() throws Exception {
        ProxySettings settings = settings();
        Config config = ProxyConfig.load();
        ProxyMetrics.start(config);
        ActorSystem system = ActorSystem.create("pegaflow-proxy", config);
        PdProxy proxy;
        try {
            proxy = PdProxy.start(system, settings, Duration.ofSeconds(10));
        } catch (Exception e) {
            system.terminate();
            throw new IllegalStateException("cannot listen on " + host + ":" + port + ": " + rootMessage(e), e);
        }
        Thread stop = new Thread(
                () -> {
                    proxy.close();
                    system.terminate();
                },
                "proxy-stop");
        Runtime.getRuntime().addShutdownHook(stop);
        out.printf(
                "pegaflow proxy on http://%s:%d: prefill %s, decode %s%n",
                host, proxy.port(), settings.prefill(), settings.decode());
        out.flush();
        system.getWhenTerminated().toCompletableFuture().join();
        return 0;
    }

    private ProxySettings settings() {
        if (legTimeoutS < 1 || legTimeoutS > 86_400) {
            throw new ParameterException(
                    spec.commandLine(), "--leg-timeout-s: " + legTimeoutS + " is outside 1..86400");
        }
        try {
            List<URI> prefillUrls = prefill.stream()
                    .map(u -> ProxySettings.engineUrl("--prefill", u))
                    .toList();
            List<URI> decodeUrls = decode.stream()
                    .map(u -> ProxySettings.engineUrl("--decode", u))
                    .toList();
            return new ProxySettings(host, port, prefillUrls, decodeUrls, Duration.ofSeconds(legTimeoutS));
        } catch (IllegalArgumentException e) {
            throw new ParameterException(spec.commandLine(), e.getMessage());
        }
    }

    private static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
        }
        return t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
    }
}
