package io.pegaflow.proxy;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Pattern;
import org.apache.pekko.actor.ActorSystem;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.ServerBinding;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpEntities;
import org.apache.pekko.http.javadsl.model.HttpHeader;
import org.apache.pekko.http.javadsl.model.HttpMethods;
import org.apache.pekko.http.javadsl.model.HttpRequest;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.ResponseEntity;
import org.apache.pekko.http.javadsl.model.StatusCode;
import org.apache.pekko.http.javadsl.model.headers.RawHeader;
import org.apache.pekko.stream.Materializer;
import org.apache.pekko.stream.SystemMaterializer;
import org.apache.pekko.stream.javadsl.Source;
import org.apache.pekko.util.ByteString;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The P/D proxy's HTTP server: each {@code POST /v1/completions} or {@code /v1/chat/completions} runs as a prefill
 * leg then a decode leg (engines taken round-robin); {@code GET /health}, {@code GET /metrics}, {@code GET
 * /v1/models} (a decode engine's). A leg that cannot be reached, times out, answers 5xx or a prefill answer that is
 * not a JSON object with an object {@code kv_transfer_params} ends the request with 502 naming the leg and the engine;
 * an engine's 4xx (the client's mistake) is passed through. The client's {@code X-Request-Id} (or a new one) goes to
 * both legs and back to the client.
 */
public final class PdProxy implements AutoCloseable {
    static final String REQUEST_ID = "X-Request-Id";
    static final String LEG_HEADER = "X-Pegaflow-Leg";
    private static final Logger log = LoggerFactory.getLogger(PdProxy.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern GOOD_REQUEST_ID = Pattern.compile("[A-Za-z0-9._:-]{1,128}");
    private static final long MAX_BODY_BYTES = 64L << 20;
    private static final int EXCERPT_CHARS = 300;

    private final Materializer materializer;
    private final Http http;
    private final EnginePool prefill;
    private final EnginePool decode;
    private final Duration legTimeout;
    private volatile ServerBinding binding;

    private PdProxy(ActorSystem system, ProxySettings settings) {
        this.materializer = SystemMaterializer.get(system).materializer();
        this.http = Http.get(system);
        this.prefill = new EnginePool("prefill", settings.prefill());
        this.decode = new EnginePool("decode", settings.decode());
        this.legTimeout = settings.legTimeout();
    }

    /** Binds {@code settings.host():settings.port()} (0: any free port) and serves until {@link #close()}. */
    public static PdProxy start(ActorSystem system, ProxySettings settings, Duration bindTimeout) throws Exception {
        PdProxy proxy = new PdProxy(system, settings);
        proxy.binding = Http.get(system)
                .newServerAt(settings.host(), settings.port())
                .bind(proxy::handle)
                .toCompletableFuture()
                .get(bindTimeout.toMillis(), TimeUnit.MILLISECONDS);
        return proxy;
    }

    public int port() {
        return binding.localAddress().getPort();
    }

    @Override
    public void close() {
        ServerBinding bound = binding;
        if (bound != null) {
            bound.unbind()
                    .toCompletableFuture()
                    .orTimeout(5, TimeUnit.SECONDS)
                    .exceptionally(e -> null)
                    .join();
        }
    }

    // ---- routing ----

    CompletionStage<HttpResponse> handle(HttpRequest request) {
        String path = request.getUri().path();
        boolean get = request.method().equals(HttpMethods.GET);
        boolean post = request.method().equals(HttpMethods.POST);
        if (post && path.equals("/v1/completions")) {
            return complete(request, "completions");
        }
        if (post && path.equals("/v1/chat/completions")) {
            return complete(request, "chat");
        }
        request.discardEntityBytes(materializer);
        if (get && path.equals("/health")) {
            return done(HttpResponse.create().withEntity("ok"));
        }
        if (get && path.equals("/metrics")) {
            return done(HttpResponse.create()
                    .withEntity(
                            ContentTypes.parse("text/plain; version=0.0.4; charset=UTF-8"),
                            ProxyMetrics.scrape().getBytes(StandardCharsets.UTF_8)));
        }
        if (get && path.equals("/v1/models")) {
            return models(requestId(request));
        }
        return done(error(404, "no route " + request.method().name() + " " + path, null, null, null));
    }

    // ---- one completion: the two legs ----

    private CompletionStage<HttpResponse> complete(HttpRequest request, String endpoint) {
        String path = request.getUri().path();
        String requestId = requestId(request);
        Optional<HttpHeader> auth = request.getHeader("Authorization");
        return request.entity()
                .toStrict(legTimeout.toMillis(), MAX_BODY_BYTES, materializer)
                .thenCompose(strict -> {
                    ObjectNode body;
                    try {
                        body = parseBody(strict.getData());
                    } catch (IllegalArgumentException e) {
                        ProxyMetrics.request(endpoint, "bad_request");
                        return done(error(400, e.getMessage(), null, null, requestId));
                    }
                    return prefillLeg(path, body, requestId, auth).thenCompose(outcome -> {
                        if (outcome.refusal() != null) {
                            ProxyMetrics.request(endpoint, "prefill_refused");
                            return done(outcome.refusal());
                        }
                        return decodeLeg(path, body, outcome.params(), requestId, auth)
                                .thenApply(response -> {
                                    ProxyMetrics.request(
                                            endpoint, response.status().intValue() < 400 ? "ok" : "decode_refused");
                                    return response;
                                });
                    });
                })
                .exceptionally(e -> failed(e, endpoint, requestId));
    }

    private record PrefillOutcome(JsonNode params, HttpResponse refusal) {}

    private CompletionStage<PrefillOutcome> prefillLeg(
            String path, ObjectNode body, String requestId, Optional<HttpHeader> auth) {
        URI engine = prefill.pick();
        ObjectNode leg = body.deepCopy();
        leg.put("max_tokens", 1);
        if (leg.has("max_completion_tokens")) {
            leg.put("max_completion_tokens", 1);
        }
        leg.put("stream", false);
        leg.remove("stream_options");
        ObjectNode params = leg.putObject("kv_transfer_params");
        params.put("do_remote_decode", true);
        params.put("do_remote_prefill", false);
        long startNs = System.nanoTime();
        return send(engine, path, leg, requestId, auth)
                .thenCompose(response -> response.entity()
                        .toStrict(legTimeout.toMillis(), MAX_BODY_BYTES, materializer)
                        .thenApply(strict -> new Answer(response.status(), strict.getData())))
                .handle((answer, error) -> {
                    long ns = System.nanoTime() - startNs;
                    if (error != null) {
                        ProxyMetrics.leg("prefill", "unreachable", ns);
                        throw new LegFailure("prefill", engine, reason(error));
                    }
                    int status = answer.status().intValue();
                    if (status >= 400 && status < 500) {
                        ProxyMetrics.leg("prefill", "refused", ns);
                        return new PrefillOutcome(null, passThrough(answer, "prefill", requestId));
                    }
                    if (status / 100 != 2) {
                        ProxyMetrics.leg("prefill", "error", ns);
                        throw new LegFailure("prefill", engine, "answered " + status + ": " + excerpt(answer.body()));
                    }
                    JsonNode kv = handoff(answer.body(), engine);
                    ProxyMetrics.leg("prefill", "ok", ns);
                    return new PrefillOutcome(kv, null);
                });
    }

    /** The prefill answer's kv_transfer_params (null when it has none: decode then computes the prompt itself). */
    private static JsonNode handoff(ByteString body, URI engine) {
        JsonNode parsed;
        try {
            parsed = JSON.readTree(body.toArrayUnsafe());
        } catch (java.io.IOException e) {
            throw new LegFailure("prefill", engine, "answered something that is not JSON: " + excerpt(body));
        }
        if (parsed == null || !parsed.isObject()) {
            throw new LegFailure("prefill", engine, "answered something that is not a JSON object: " + excerpt(body));
        }
        JsonNode kv = parsed.get("kv_transfer_params");
        if (kv == null || kv.isNull()) {
            log.debug("prefill engine {} answered without kv_transfer_params; decode computes the prompt", engine);
            return null;
        }
        if (!kv.isObject()) {
            throw new LegFailure("prefill", engine, "answered kv_transfer_params that are not a JSON object");
        }
        return kv;
    }

    private CompletionStage<HttpResponse> decodeLeg(
            String path, ObjectNode body, JsonNode params, String requestId, Optional<HttpHeader> auth) {
        URI engine = decode.pick();
        ObjectNode leg = body.deepCopy();
        if (params != null) {
            leg.set("kv_transfer_params", params);
        }
        long startNs = System.nanoTime();
        return send(engine, path, leg, requestId, auth)
                .exceptionally(error -> {
                    ProxyMetrics.leg("decode", "unreachable", System.nanoTime() - startNs);
                    throw new LegFailure("decode", engine, reason(error));
                })
                .thenCompose(response -> {
                    int status = response.status().intValue();
                    if (status / 100 != 2 && (status < 400 || status >= 500)) {
                        return response.entity()
                                .toStrict(legTimeout.toMillis(), MAX_BODY_BYTES, materializer)
                                .thenApply(strict -> {
                                    ProxyMetrics.leg("decode", "error", System.nanoTime() - startNs);
                                    throw new LegFailure(
                                            "decode", engine, "answered " + status + ": " + excerpt(strict.getData()));
                                });
                    }
                    return done(streamed(response, status < 400 ? "ok" : "refused", startNs, requestId));
                });
    }

    /** Decode's answer passed through as it arrives (SSE when the client asked to stream). */
    private static HttpResponse streamed(HttpResponse response, String outcome, long startNs, String requestId) {
        ResponseEntity entity = response.entity();
        ResponseEntity through;
        if (entity.isStrict()) {
            ProxyMetrics.leg("decode", outcome, System.nanoTime() - startNs);
            through = entity;
        } else {
            Source<ByteString, Object> bytes = entity.getDataBytes().watchTermination((mat, finished) -> {
                finished.whenComplete((d, e) ->
                        ProxyMetrics.leg("decode", e == null ? outcome : "broken", System.nanoTime() - startNs));
                return mat;
            });
            through = HttpEntities.createChunked(entity.getContentType(), bytes);
        }
        return HttpResponse.create()
                .withStatus(response.status())
                .withEntity(through)
                .addHeader(RawHeader.create(REQUEST_ID, requestId));
    }

    private CompletionStage<HttpResponse> models(String requestId) {
        URI engine = decode.pick();
        HttpRequest out = HttpRequest.GET(engine + "/v1/models").addHeader(RawHeader.create(REQUEST_ID, requestId));
        return http.singleRequest(out)
                .toCompletableFuture()
                .orTimeout(legTimeout.toMillis(), TimeUnit.MILLISECONDS)
                .exceptionally(error -> {
                    throw new LegFailure("decode", engine, reason(error));
                })
                .thenApply(response -> streamed(response, "ok", System.nanoTime(), requestId))
                .exceptionally(e -> failed(e, "models", requestId));
    }

    private CompletionStage<HttpResponse> send(
            URI engine, String path, JsonNode body, String requestId, Optional<HttpHeader> auth) {
        byte[] bytes;
        try {
            bytes = JSON.writeValueAsBytes(body);
        } catch (JacksonException e) {
            return CompletableFuture.failedFuture(e);
        }
        HttpRequest out = HttpRequest.POST(engine + path)
                .withEntity(HttpEntities.create(ContentTypes.APPLICATION_JSON, bytes))
                .addHeader(RawHeader.create(REQUEST_ID, requestId));
        if (auth.isPresent()) {
            out = out.addHeader(auth.get());
        }
        return http.singleRequest(out).toCompletableFuture().orTimeout(legTimeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    // ---- answers ----

    private record Answer(StatusCode status, ByteString body) {}

    private static HttpResponse passThrough(Answer answer, String leg, String requestId) {
        return HttpResponse.create()
                .withStatus(answer.status())
                .withEntity(HttpEntities.create(ContentTypes.APPLICATION_JSON, answer.body()))
                .addHeader(RawHeader.create(REQUEST_ID, requestId))
                .addHeader(RawHeader.create(LEG_HEADER, leg));
    }

    private static HttpResponse failed(Throwable e, String endpoint, String requestId) {
        Throwable cause = unwrap(e);
        if (cause instanceof LegFailure leg) {
            ProxyMetrics.request(endpoint, leg.leg() + "_failed");
            log.warn("request {}: {}", requestId, leg.getMessage());
            return error(502, leg.getMessage(), leg.leg(), leg.engine(), requestId);
        }
        ProxyMetrics.request(endpoint, "proxy_error");
        log.error("request {} failed in the proxy", requestId, cause);
        return error(500, "proxy error: " + reason(cause), null, null, requestId);
    }

    static HttpResponse error(int status, String message, String leg, URI engine, String requestId) {
        ObjectNode root = JSON.createObjectNode();
        ObjectNode error = root.putObject("error");
        error.put("message", message);
        error.put("type", status == 502 ? "BadGateway" : status == 400 ? "BadRequestError" : "Error");
        error.put("code", status);
        if (leg != null) {
            error.put("leg", leg);
            error.put("engine", engine.toString());
        }
        HttpResponse response = HttpResponse.create()
                .withStatus(status)
                .withEntity(HttpEntities.create(ContentTypes.APPLICATION_JSON, root.toString()));
        if (requestId != null) {
            response = response.addHeader(RawHeader.create(REQUEST_ID, requestId));
        }
        if (leg != null) {
            response = response.addHeader(RawHeader.create(LEG_HEADER, leg));
        }
        return response;
    }

    // ---- helpers ----

    /** The client's body: a JSON object whose {@code stream}, if present, is a boolean. */
    static ObjectNode parseBody(ByteString data) {
        JsonNode node;
        try {
            node = JSON.readTree(data.toArrayUnsafe());
        } catch (java.io.IOException e) {
            throw new IllegalArgumentException("the body is not JSON: "
                    + (e instanceof JacksonException j ? j.getOriginalMessage() : e.getMessage()));
        }
        if (node == null || !node.isObject()) {
            throw new IllegalArgumentException("the body must be a JSON object");
        }
        JsonNode stream = node.get("stream");
        if (stream != null && !stream.isBoolean() && !stream.isNull()) {
            throw new IllegalArgumentException("stream: expected true or false");
        }
        return (ObjectNode) node;
    }

    private static String requestId(HttpRequest request) {
        return request.getHeader(REQUEST_ID)
                .map(HttpHeader::value)
                .filter(id -> GOOD_REQUEST_ID.matcher(id).matches())
                .orElseGet(() -> UUID.randomUUID().toString());
    }

    private static Throwable unwrap(Throwable e) {
        Throwable t = e;
        while (t instanceof CompletionException && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }

    private static String reason(Throwable e) {
        Throwable t = unwrap(e);
        if (t instanceof LegFailure) {
            return t.getMessage();
        }
        if (t instanceof TimeoutException) {
            return "no answer within the leg timeout";
        }
        String message = t.getMessage();
        return (message == null || message.isBlank()) ? t.getClass().getSimpleName() : message;
    }

    private static String excerpt(ByteString body) {
        String text = body.utf8String().strip();
        return text.length() <= EXCERPT_CHARS ? text : text.substring(0, EXCERPT_CHARS) + "...";
    }

    private static <T> CompletionStage<T> done(T value) {
        return CompletableFuture.completedFuture(value);
    }
}
