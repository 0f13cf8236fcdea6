package io.pegaflow.fabric.engine;

/**
 * A request the engine refuses, with the gRPC status it maps to and a message naming the field. A refused request
 * has changed nothing.
 */
public final class EngineException extends RuntimeException {
    /** The subset of gRPC codes the engine uses. */
    public enum Code {
        INVALID_ARGUMENT,
        NOT_FOUND,
        FAILED_PRECONDITION,
        RESOURCE_EXHAUSTED,
        UNAVAILABLE,
        INTERNAL
    }

    private final Code code;

    public EngineException(Code code, String message) {
        super(message);
        this.code = code;
    }

    public EngineException(Code code, String message, Throwable cause) {
        super(message, cause);
        this.code = code;
    }

    public Code code() {
        return code;
    }

    static EngineException invalid(String message) {
        return new EngineException(Code.INVALID_ARGUMENT, message);
    }

    static EngineException notFound(String message) {
        return new EngineException(Code.NOT_FOUND, message);
    }

    static EngineException precondition(String message) {
        return new EngineException(Code.FAILED_PRECONDITION, message);
    }

    static EngineException exhausted(String message) {
        return new EngineException(Code.RESOURCE_EXHAUSTED, message);
    }

    static EngineException unavailable(String message) {
        return new EngineException(Code.UNAVAILABLE, message);
    }

    /** The EngineException behind a stage's failure, or null when the failure is something else. */
    public static EngineException unwrap(Throwable error) {
        Throwable t = error;
        while ((t instanceof java.util.concurrent.CompletionException
                        || t instanceof java.util.concurrent.ExecutionException)
                && t.getCause() != null) {
            t = t.getCause();
        }
        return t instanceof EngineException e ? e : null;
    }
}
