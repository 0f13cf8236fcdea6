package io.pegaflow.proxy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;

/**
 * A stand-in engine for the proxy's tests: a real HTTP server on a loopback port (the JDK's) that records every
 * request and answers with what the test's {@link Answer} says.
 */
final class StubEngine implements AutoCloseable {
    static final ObjectMapper JSON = new ObjectMapper();

    record Seen(String path, String requestId, JsonNode body) {}

    @FunctionalInterface
    interface Answer {
        void answer(HttpExchange exchange, JsonNode body) throws Exception;
    }

    private final HttpServer server;
    final List<Seen> seen = new CopyOnWriteArrayList<>();

    StubEngine(Answer answer) throws IOException {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.setExecutor(Executors.newCachedThreadPool());
        server.createContext("/", exchange -> {
            try (exchange) {
                byte[] raw = exchange.getRequestBody().readAllBytes();
                JsonNode body = raw.length == 0 ? null : JSON.readTree(raw);
                seen.add(new Seen(
                        exchange.getRequestURI().getPath(),
                        exchange.getRequestHeaders().getFirst("X-Request-Id"),
                        body));
                answer.answer(exchange, body);
            } catch (Exception e) {
                throw new IOException(e);
            }
        });
        server.start();
    }

    URI url() {
        return URI.create("http://127.0.0.1:" + server.getAddress().getPort());
    }

    static void json(HttpExchange exchange, int status, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        exchange.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(bytes);
        }
    }

    /** A prefill engine: answers with these kv_transfer_params (raw JSON). */
    static Answer prefill(String kvTransferParams) {
        return (exchange, body) -> json(
                exchange,
                200,
                "{\"id\":\"cmpl-p\",\"object\":\"text_completion\",\"choices\":[{\"index\":0,\"text\":\" t1\"}],"
                        + "\"kv_transfer_params\":" + kvTransferParams + "}");
    }

    /** A decode engine: SSE when asked to stream, else JSON echoing what it got. */
    static Answer decode() {
        return (exchange, body) -> {
            if (body.path("stream").asBoolean(false)) {
                exchange.getResponseHeaders().set("Content-Type", "text/event-stream");
                exchange.sendResponseHeaders(200, 0);
                try (OutputStream out = exchange.getResponseBody()) {
                    for (int i = 0; i < 3; i++) {
                        out.write(("data: {\"choices\":[{\"text\":\" t" + i + "\"}]}\n\n")
                                .getBytes(StandardCharsets.UTF_8));
                        out.flush();
                    }
                    out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
                }
                return;
            }
            json(exchange, 200, "{\"id\":\"cmpl-d\",\"choices\":[{\"index\":0,\"text\":\" t1 t2\"}]}");
        };
    }

    @Override
    public void close() {
        server.stop(0);
    }
}
