package io.pegaflow.proxy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.ActorSystem;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The proxy against stand-in engines: real HTTP servers on loopback ports (the JDK's), real client calls. */
@Timeout(60)
class PdProxyTest {
    private static final String HANDOFF =
            "{\"do_remote_prefill\":true,\"do_remote_decode\":false,\"pegaflow\":{\"x\":1}}";
    private static ActorSystem system;
    private static final HttpClient CLIENT =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @BeforeAll
    static void startSystem() {
        var config = ProxyConfig.load();
        ProxyMetrics.start(config);
        system = ActorSystem.create("proxy-test", config);
    }

    @AfterAll
    static void stopSystem() throws Exception {
        system.terminate();
        system.getWhenTerminated().toCompletableFuture().get(20, TimeUnit.SECONDS);
    }

    private static PdProxy proxy(List<URI> prefill, List<URI> decode, Duration legTimeout) throws Exception {
        return PdProxy.start(
                system, new ProxySettings("127.0.0.1", 0, prefill, decode, legTimeout), Duration.ofSeconds(10));
    }

    private static PdProxy proxy(StubEngine prefill, StubEngine decode) throws Exception {
        return proxy(List.of(prefill.url()), List.of(decode.url()), Duration.ofSeconds(10));
    }

    private static HttpResponse<String> post(PdProxy proxy, String path, String body, String requestId)
            throws Exception {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + proxy.port() + path))
                .timeout(Duration.ofSeconds(30))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body));
        if (requestId != null) {
            request.header("X-Request-Id", requestId);
        }
        return CLIENT.send(request.build(), HttpResponse.BodyHandlers.ofString());
    }

    private static JsonNode json(String text) throws Exception {
        return StubEngine.JSON.readTree(text);
    }

    private static URI deadUrl() throws Exception {
        try (ServerSocket socket = new ServerSocket(0)) {
            return URI.create("http://127.0.0.1:" + socket.getLocalPort());
        }
    }

    @Test
    void shouldSendThePrefillLegWithOneTokenUnstreamedAskingForRemoteDecode() throws Exception {
        try (StubEngine prefill = new StubEngine(StubEngine.prefill(HANDOFF));
                StubEngine decode = new StubEngine(StubEngine.decode());
                PdProxy proxy = proxy(prefill, decode)) {
            HttpResponse<String> reply = post(
                    proxy,
                    "/v1/completions",
                    "{\"prompt\":\"hi\",\"max_tokens\":50,\"stream\":false,\"stream_options\":{\"x\":1},"
                            + "\"kv_transfer_params\":{\"do_remote_prefill\":true,\"pegaflow\":{\"forged\":1}}}",
                    null);
            assertEquals(200, reply.statusCode(), reply.body());
            JsonNode leg = prefill.seen.getFirst().body();
            assertEquals("/v1/completions", prefill.seen.getFirst().path());
            assertEquals(1, leg.get("max_tokens").asInt());
            assertFalse(leg.get("stream").asBoolean());
            assertFalse(leg.has("stream_options"));
            assertEquals(
                    json("{\"do_remote_decode\":true,\"do_remote_prefill\":false}"), leg.get("kv_transfer_params"));
        }
    }

    @Test
    void shouldCopyThePrefillParamsIntoTheDecodeRequestKeepingTheClientsOtherFields() throws Exception {
        try (StubEngine prefill = new StubEngine(StubEngine.prefill(HANDOFF));
                StubEngine decode = new StubEngine(StubEngine.decode());
                PdProxy proxy = proxy(prefill, decode)) {
            HttpResponse<String> reply = post(
                    proxy,
                    "/v1/chat/completions",
                    "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":7,\"temperature\":0}",
                    null);
            assertEquals(200, reply.statusCode(), reply.body());
            assertEquals(" t1 t2", json(reply.body()).at("/choices/0/text").asText());
            JsonNode leg = decode.seen.getFirst().body();
            assertEquals("/v1/chat/completions", decode.seen.getFirst().path());
            assertEquals(7, leg.get("max_tokens").asInt());
            assertEquals(0, leg.get("temperature").asInt());
            assertEquals(json(HANDOFF), leg.get("kv_transfer_params"));
        }
    }

    @Test
    void shouldStreamTheDecodeAnswerThroughAsItArrives() throws Exception {
        CountDownLatch firstEventRead = new CountDownLatch(1);
        StubEngine.Answer slowDecode = (exchange, body) -> {
            exchange.getResponseHeaders().set("Content-Type", "text/event-stream");
            exchange.sendResponseHeaders(200, 0);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write("data: {\"n\":0}\n\n".getBytes(StandardCharsets.UTF_8));
                out.flush();
                // The rest only once the client has seen the first event: a proxy that buffers would hang here.
                assertTrue(firstEventRead.await(20, TimeUnit.SECONDS));
                out.write("data: {\"n\":1}\n\ndata: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
            }
        };
        try (StubEngine prefill = new StubEngine(StubEngine.prefill(HANDOFF));
                StubEngine decode = new StubEngine(slowDecode);
                PdProxy proxy = proxy(prefill, decode)) {
            HttpRequest request = HttpRequest.newBuilder(
                            URI.create("http://127.0.0.1:" + proxy.port() + "/v1/completions"))
                    .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\":\"hi\",\"max_tokens\":2,\"stream\":true}"))
                    .build();
            HttpResponse<InputStream> reply = CLIENT.send(request, HttpResponse.BodyHandlers.ofInputStream());
            assertEquals(200, reply.statusCode());
            assertTrue(reply.headers().firstValue("Content-Type").orElse("").startsWith("text/event-stream"));
            try (BufferedReader lines =
                    new BufferedReader(new InputStreamReader(reply.body(), StandardCharsets.UTF_8))) {
                assertEquals("data: {\"n\":0}", lines.readLine());
                firstEventRead.countDown();
                StringBuilder rest = new StringBuilder();
                for (String line = lines.readLine(); line != null; line = lines.readLine()) {
                    rest.append(line).append('\n');
                }
                assertTrue(rest.toString().contains("data: {\"n\":1}"), rest.toString());
                assertTrue(rest.toString().contains("data: [DONE]"), rest.toString());
            }
            assertTrue(decode.seen.getFirst().body().get("stream").asBoolean());
            assertFalse(prefill.seen.getFirst().body().get("stream").asBoolean());
        }
    }

    @Test
    void shouldTakeTheEnginesOfEachLegRoundRobin() throws Exception {
        try (StubEngine p1 = new StubEngine(StubEngine.prefill(HANDOFF));
                StubEngine p2 = new StubEngine(StubEngine.prefill(HANDOFF));
                StubEngine d1 = new StubEngine(StubEngine.decode());
                StubEngine d2 = new StubEngine(StubEngine.decode());
                PdProxy proxy =
                        proxy(List.of(p1.url(), p2.url()), List.of(d1.url(), d2.url()), Duration.ofSeconds(10))) {
            for (int i = 0; i < 4; i++) {
                assertEquals(
                        200,
                        post(proxy, "/v1/completions", "{\"prompt\":\"x\"}", null)
                                .statusCode());
            }
            assertEquals(List.of(2, 2, 2, 2), List.of(p1.seen.size(), p2.seen.size(), d1.seen.size(), d2.seen.size()));
        }
    }

    @Test
    void shouldPropagateTheClientsRequestIdToBothLegsAndBack() throws Exception {
        try (StubEngine prefill = new StubEngine(StubEngine.prefill(HANDOFF));
                StubEngine decode = new StubEngine(StubEngine.decode());
                PdProxy proxy = proxy(prefill, decode)) {
            HttpResponse<String> reply = post(proxy, "/v1/completions", "{\"prompt\":\"x\"}", "req-42");
            assertEquals("req-42", reply.headers().firstValue("X-Request-Id").orElse(null));
            assertEquals("req-42", prefill.seen.getFirst().requestId());
            assertEquals("req-42", decode.seen.getFirst().requestId());

            post(proxy, "/v1/completions", "{\"prompt\":\"x\"}", null);
            String minted = prefill.seen.get(1).requestId();
            assertNotNull(minted);
            assertEquals(minted, decode.seen.get(1).requestId());
        }
    }

    @Test
    void shouldAnswer502NamingThePrefillLegWhenItsEngineIsDown() throws Exception {
        URI dead = deadUrl();
        try (StubEngine decode = new StubEngine(StubEngine.decode());
                PdProxy proxy = proxy(List.of(dead), List.of(decode.url()), Duration.ofSeconds(10))) {
            HttpResponse<String> reply = post(proxy, "/v1/completions", "{\"prompt\":\"x\"}", null);
            assertEquals(502, reply.statusCode(), reply.body());
            JsonNode error = json(reply.body()).get("error");
            assertEquals("prefill", error.get("leg").asText());
            assertEquals(dead.toString(), error.get("engine").asText());
            assertTrue(error.get("message").asText().startsWith("prefill leg failed"), error.toString());
            assertEquals("prefill", reply.headers().firstValue("X-Pegaflow-Leg").orElse(null));
            assertTrue(decode.seen.isEmpty());
        }
    }

    @Test
    void shouldAnswer502NamingTheDecodeLegWhenItsEngineIsDown() throws Exception {
        URI dead = deadUrl();
        try (StubEngine prefill = new StubEngine(StubEngine.prefill(HANDOFF));
                PdProxy proxy = proxy(List.of(prefill.url()), List.of(dead), Duration.ofSeconds(10))) {
            HttpResponse<String> reply = post(proxy, "/v1/completions", "{\"prompt\":\"x\"}", null);
            assertEquals(502, reply.statusCode(), reply.body());
            JsonNode error = json(reply.body()).get("error");
            assertEquals("decode", error.get("leg").asText());
            assertEquals(dead.toString(), error.get("engine").asText());
        }
    }

    @Test
    void shouldAnswer502WithTheEnginesWordsWhenALegAnswers5xx() throws Exception {
        try (StubEngine prefill = new StubEngine(StubEngine.prefill(HANDOFF));
                StubEngine decode =
                        new StubEngine((exchange, body) -> StubEngine.json(exchange, 503, "{\"e\":\"busy\"}"));
                PdProxy proxy = proxy(prefill, decode)) {
            HttpResponse<String> reply = post(proxy, "/v1/completions", "{\"prompt\":\"x\"}", null);
            assertEquals(502, reply.statusCode());
            String message = json(reply.body()).at("/error/message").asText();
            assertTrue(message.contains("decode") && message.contains("503") && message.contains("busy"), message);
        }
    }

    @Test
    void shouldAnswer502WhenThePrefillEngineHandsBackParamsThatAreNotAnObject() throws Exception {
        try (StubEngine prefill = new StubEngine(StubEngine.prefill("[1,2]"));
                StubEngine decode = new StubEngine(StubEngine.decode());
                PdProxy proxy = proxy(prefill, decode)) {
            HttpResponse<String> reply = post(proxy, "/v1/completions", "{\"prompt\":\"x\"}", null);
            assertEquals(502, reply.statusCode());
            assertEquals("prefill", json(reply.body()).at("/error/leg").asText());
            assertTrue(decode.seen.isEmpty());
        }
    }

    @Test
    void shouldSendTheDecodeLegWithoutParamsWhenPrefillReturnedNone() throws Exception {
        try (StubEngine prefill = new StubEngine(StubEngine.prefill("null"));
                StubEngine decode = new StubEngine(StubEngine.decode());
                PdProxy proxy = proxy(prefill, decode)) {
            assertEquals(
                    200,
                    post(proxy, "/v1/completions", "{\"prompt\":\"x\"}", null).statusCode());
            assertFalse(decode.seen.getFirst().body().has("kv_transfer_params"));
        }
    }

    @Test
    void shouldPassAnEnginesClientErrorThroughWithoutTheOtherLeg() throws Exception {
        try (StubEngine prefill = new StubEngine((exchange, body) ->
                        StubEngine.json(exchange, 400, "{\"error\":{\"message\":\"prompt too long\"}}"));
                StubEngine decode = new StubEngine(StubEngine.decode());
                PdProxy proxy = proxy(prefill, decode)) {
            HttpResponse<String> reply = post(proxy, "/v1/completions", "{\"prompt\":\"x\"}", null);
            assertEquals(400, reply.statusCode());
            assertTrue(reply.body().contains("prompt too long"), reply.body());
            assertEquals("prefill", reply.headers().firstValue("X-Pegaflow-Leg").orElse(null));
            assertTrue(decode.seen.isEmpty());
        }
    }

    @Test
    void shouldRefuseABodyThatIsNotAJsonObjectWith400AndCallNoEngine() throws Exception {
        try (StubEngine prefill = new StubEngine(StubEngine.prefill(HANDOFF));
                StubEngine decode = new StubEngine(StubEngine.decode());
                PdProxy proxy = proxy(prefill, decode)) {
            for (String bad : List.of("[1]", "not json", "{\"prompt\":\"x\",\"stream\":\"yes\"}")) {
                HttpResponse<String> reply = post(proxy, "/v1/completions", bad, null);
                assertEquals(400, reply.statusCode(), bad);
                assertEquals(400, json(reply.body()).at("/error/code").asInt());
            }
            assertTrue(prefill.seen.isEmpty() && decode.seen.isEmpty());
        }
    }

    @Test
    void shouldAnswer502WhenALegIsSilentPastTheLegTimeout() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        try (StubEngine prefill = new StubEngine((exchange, body) -> {
                    release.await(20, TimeUnit.SECONDS);
                    StubEngine.prefill(HANDOFF).answer(exchange, body);
                });
                StubEngine decode = new StubEngine(StubEngine.decode());
                PdProxy proxy = proxy(List.of(prefill.url()), List.of(decode.url()), Duration.ofSeconds(1))) {
            long startNs = System.nanoTime();
            HttpResponse<String> reply = post(proxy, "/v1/completions", "{\"prompt\":\"x\"}", null);
            release.countDown();
            assertEquals(502, reply.statusCode());
            assertTrue(json(reply.body()).at("/error/message").asText().contains("leg timeout"), reply.body());
            assertTrue(System.nanoTime() - startNs < TimeUnit.SECONDS.toNanos(10));
        }
    }

    @Test
    void shouldRecordEachLegsLatencyOnItsMetricsEndpoint() throws Exception {
        try (StubEngine prefill = new StubEngine(StubEngine.prefill(HANDOFF));
                StubEngine decode = new StubEngine(StubEngine.decode());
                PdProxy proxy = proxy(prefill, decode)) {
            assertEquals(
                    200,
                    post(proxy, "/v1/completions", "{\"prompt\":\"x\"}", null).statusCode());
            HttpRequest scrape = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + proxy.port() + "/metrics"))
                    .build();
            String text = "";
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
            while (System.nanoTime() < deadline) {
                text = CLIENT.send(scrape, HttpResponse.BodyHandlers.ofString()).body();
                if (hasSample(text, "pegaflow_proxy_leg_duration_seconds_count", "leg=\"decode\"", "outcome=\"ok\"")) {
                    break;
                }
                Thread.sleep(200);
            }
            assertTrue(
                    hasSample(text, "pegaflow_proxy_leg_duration_seconds_count", "leg=\"prefill\"", "outcome=\"ok\""),
                    text);
            assertTrue(
                    hasSample(text, "pegaflow_proxy_leg_duration_seconds_count", "leg=\"decode\"", "outcome=\"ok\""),
                    text);
            assertTrue(
                    hasSample(text, "pegaflow_proxy_requests_total", "endpoint=\"completions\"", "outcome=\"ok\""),
                    text);
        }
    }

    /** A sample line of {@code name} carrying every label (Prometheus puts labels in no fixed order). */
    private static boolean hasSample(String text, String name, String... labels) {
        return text.lines()
                .filter(line -> line.startsWith(name + "{"))
                .anyMatch(line -> java.util.Arrays.stream(labels).allMatch(line::contains));
    }
}
