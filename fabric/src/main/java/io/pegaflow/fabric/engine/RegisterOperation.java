package io.pegaflow.fabric.engine;

import io.pegaflow.gpu.CopyEngine;
import io.pegaflow.store.NamespaceLayout;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * RegisterContext: checks the request on the caller's thread, then maps its memory and publishes the context on a
 * mapping thread. A refused registration leaves nothing mapped and fixes no namespace layout.
 */
final class RegisterOperation {
    private static final Logger log = LoggerFactory.getLogger(RegisterOperation.class);

    private final ContextRegistry registry;
    private final RegionMapper regions;
    private final CopyEngine copyEngine;
    private final long slabBytes;
    private final BoundedExecutor mapping;
    private final Executor unmapper;
    private final Path sharedMemoryDir;
    private final SharedMemoryMapper files;
    private final int flagFilesPerContext;

    RegisterOperation(
            ContextRegistry registry,
            CopyEngine copyEngine,
            long slabBytes,
            BoundedExecutor mapping,
            Executor unmapper,
            EngineSettings settings,
            SharedMemoryMapper files) {
        this.registry = registry;
        this.copyEngine = copyEngine;
        this.slabBytes = slabBytes;
        this.mapping = mapping;
        this.unmapper = unmapper;
        this.sharedMemoryDir = settings.sharedMemoryDir();
        this.files = files;
        this.flagFilesPerContext = settings.flagFilesPerContext();
        this.regions = new RegionMapper(sharedMemoryDir, files, copyEngine);
    }

    CompletableFuture<Registered> register(ContextRegistration r) {
        try {
            RegistrationChecks.checkFields(r, copyEngine);
        } catch (EngineException e) {
            return CompletableFuture.failedFuture(e);
        }
        return mapping.supply("register", () -> mapAndPublish(r));
    }

    /** Runs on a mapping thread. */
    private Registered mapAndPublish(ContextRegistration r) {
        RegionMapper.Mapped mapped = regions.map(r);
        WorkerContext context;
        NamespaceLayout layout;
        try {
            layout = RegistrationChecks.layout(r, mapped.layers(), slabBytes);
            registry.claimLayout(layout);
            String id = registry.nextId(WorkerContext.workerKey(r.instanceId(), r.tpRank(), r.ppRank()));
            context = new WorkerContext(
                    id,
                    r.instanceId(),
                    layout,
                    r.tpRank(),
                    r.ppRank(),
                    r.device(),
                    mapped.layers(),
                    mapped.regions(),
                    new FlagFiles(id, sharedMemoryDir, files, mapping, flagFilesPerContext),
                    unmapper,
                    why -> registry.remove(id, why));
        } catch (RuntimeException e) {
            mapped.close();
            throw e;
        }
        registry.publish(context); // the context owns the mappings now, refused or not
        long slotBytes = layout.slotBytes();
        log.info(
                "context {} registered: namespace {}, {} layers in {} regions, tp {}/{}, {} blocks, {} bytes per block slot,"
                        + " copy engine {}",
                context.id,
                layout.namespace(),
                mapped.layers().length,
                mapped.regions().size(),
                r.tpRank(),
                layout.tpSize(),
                context.numBlocks,
                slotBytes,
                copyEngine.name());
        return new Registered(context.id, layout.blockBytes(), slotBytes * mapped.layers().length);
    }
}
