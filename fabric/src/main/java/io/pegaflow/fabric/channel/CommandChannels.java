package io.pegaflow.fabric.channel;

import io.pegaflow.fabric.engine.EngineException;
import io.pegaflow.fabric.engine.KvEngine;
import io.pegaflow.fabric.engine.Limits;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The node's command channels: opens one per OpenCommandChannel (its file created and mapped on the channel's own
 * thread, never the caller's), at most {@link Settings#perContext} per context, and closes them all when the node
 * stops. A channel also closes by itself when its context ends or its client closes it. Thread-safe; {@link #open}
 * returns at once.
 */
public final class CommandChannels implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(CommandChannels.class);
    static final String PREFIX = "pegaflow.channel.";

    /**
     * @param dir where the files go (/dev/shm)
     * @param slots request slots per channel: calls in flight at once before the client falls back to gRPC
     * @param maxBlocks blocks per call (a 10K-token call is 625 blocks of 16 tokens)
     */
    public record Settings(boolean enabled, Path dir, int slots, int maxBlocks, int maxLayers, int perContext) {
        public Settings {
            if (slots < 1 || slots > 1024 || maxBlocks < 1 || maxBlocks > Limits.BLOCKS_PER_REQUEST) {
                throw new IllegalArgumentException("command channel: slots 1..1024, max blocks 1.."
                        + Limits.BLOCKS_PER_REQUEST + " (got " + slots + ", " + maxBlocks + ")");
            }
            if (maxLayers < 0 || maxLayers > Limits.LAYERS || perContext < 1) {
                throw new IllegalArgumentException("command channel: max layers 0.." + Limits.LAYERS
                        + ", per context >= 1 (got " + maxLayers + ", " + perContext + ")");
            }
        }

        /** From the {@code pegaflow.channel.*} system properties (enabled, dir, slots, max-blocks, ...). */
        public static Settings fromSystemProperties() {
            return new Settings(
                    Boolean.parseBoolean(System.getProperty(PREFIX + "enabled", "true")),
                    Path.of(System.getProperty(PREFIX + "dir", "/dev/shm")),
                    Integer.getInteger(PREFIX + "slots", 16),
                    Integer.getInteger(PREFIX + "max-blocks", 2048),
                    Integer.getInteger(PREFIX + "max-layers", 1024),
                    Integer.getInteger(PREFIX + "per-context", 8));
        }
    }

    private final KvEngine engine;
    private final Settings settings;
    private final ChannelLayout layout;
    private final ConcurrentHashMap<CommandChannel, Boolean> open = new ConcurrentHashMap<>();
    private final AtomicLong sequence = new AtomicLong();
    private final String fileStem;
    private volatile boolean closed;

    public CommandChannels(KvEngine engine, Settings settings) {
        this.engine = engine;
        this.settings = settings;
        this.layout = new ChannelLayout(settings.slots(), settings.maxBlocks(), settings.maxLayers());
        this.fileStem = "pegaflow-chan-" + ProcessHandle.current().pid() + "-"
                + HexFormat.of().toHexDigits(new SecureRandom().nextInt());
        if (settings.enabled()) {
            StaleChannelFiles.sweep(settings.dir(), ProcessHandle.current().pid());
        }
    }

    /**
     * A new channel for {@code contextId}: completes once its file is mapped, with where it is. Fails NOT_FOUND for
     * an unknown context, RESOURCE_EXHAUSTED when the context has its limit open, UNAVAILABLE when switched off or
     * stopping (the client keeps using gRPC in every case).
     */
    public CompletionStage<ChannelInfo> open(String contextId) {
        if (!settings.enabled()) {
            return CompletableFuture.failedFuture(new EngineException(
                    EngineException.Code.UNAVAILABLE,
                    "command channels are off on this node (" + PREFIX + "enabled=false): use the RPCs"));
        }
        if (contextId.isBlank()) {
            return CompletableFuture.failedFuture(
                    new EngineException(EngineException.Code.INVALID_ARGUMENT, "context_id: missing"));
        }
        if (!engine.hasContext(contextId)) {
            return CompletableFuture.failedFuture(new EngineException(
                    EngineException.Code.NOT_FOUND, "context_id: " + Limits.echo(contextId) + " is not registered"));
        }
        synchronized (this) {
            if (closed) {
                return CompletableFuture.failedFuture(
                        new EngineException(EngineException.Code.UNAVAILABLE, "the node is stopping"));
            }
            long mine = open.keySet().stream()
                    .filter(c -> c.contextId.equals(contextId))
                    .count();
            if (mine >= settings.perContext()) {
                return CompletableFuture.failedFuture(new EngineException(
                        EngineException.Code.RESOURCE_EXHAUSTED,
                        "context " + contextId + " has " + mine + " command channels open (" + PREFIX
                                + "per-context); close one or use the RPCs"));
            }
            Path path = settings.dir().resolve(fileStem + "-" + sequence.incrementAndGet());
            CommandChannel channel = new CommandChannel(engine, contextId, path, layout, open::remove);
            open.put(channel, Boolean.TRUE);
            return channel.start();
        }
    }

    public int openCount() {
        return open.size();
    }

    /** Stops every channel (their files removed) and waits briefly for their threads; calls in flight still reply. */
    @Override
    public void close() {
        List<CommandChannel> all;
        synchronized (this) {
            closed = true;
            all = List.copyOf(open.keySet());
        }
        for (CommandChannel c : all) {
            c.stop("node stopping");
        }
        for (CommandChannel c : all) {
            try {
                if (!c.join(2_000)) {
                    log.warn("command channel {} still running 2 s after the stop", c.path);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }
}
