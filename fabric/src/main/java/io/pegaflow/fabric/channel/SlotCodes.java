package io.pegaflow.fabric.channel;

import io.pegaflow.fabric.engine.EngineException;
import java.util.concurrent.CompletionException;

/**
 * The status a slot's reply carries: the number of the gRPC status code the same call would have got over gRPC (0
 * OK), so the client raises the same error on either path. Stateless.
 */
final class SlotCodes {
    static final int OK = 0;
    static final int INVALID_ARGUMENT = 3;
    static final int NOT_FOUND = 5;
    static final int RESOURCE_EXHAUSTED = 8;
    static final int FAILED_PRECONDITION = 9;
    static final int INTERNAL = 13;
    static final int UNAVAILABLE = 14;

    private SlotCodes() {}

    static int of(EngineException.Code code) {
        return switch (code) {
            case INVALID_ARGUMENT -> INVALID_ARGUMENT;
            case NOT_FOUND -> NOT_FOUND;
            case FAILED_PRECONDITION -> FAILED_PRECONDITION;
            case RESOURCE_EXHAUSTED -> RESOURCE_EXHAUSTED;
            case UNAVAILABLE -> UNAVAILABLE;
            case INTERNAL -> INTERNAL;
        };
    }

    /** The code and message of a failed stage, as EngineGrpcImpl maps it (anything unknown is INTERNAL). */
    static Failure failure(Throwable error) {
        EngineException e = EngineException.unwrap(error);
        if (e != null) {
            return new Failure(of(e.code()), e.getMessage());
        }
        Throwable cause = error instanceof CompletionException && error.getCause() != null ? error.getCause() : error;
        return new Failure(INTERNAL, String.valueOf(cause));
    }

    /** The gRPC code's name, for the metrics. */
    static String name(int code) {
        return switch (code) {
            case OK -> "OK";
            case INVALID_ARGUMENT -> "INVALID_ARGUMENT";
            case NOT_FOUND -> "NOT_FOUND";
            case RESOURCE_EXHAUSTED -> "RESOURCE_EXHAUSTED";
            case FAILED_PRECONDITION -> "FAILED_PRECONDITION";
            case UNAVAILABLE -> "UNAVAILABLE";
            default -> "INTERNAL";
        };
    }

    record Failure(int code, String message) {}
}
