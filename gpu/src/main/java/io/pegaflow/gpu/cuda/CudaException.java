package io.pegaflow.gpu.cuda;

import io.pegaflow.gpu.cuda.ffi.CuResult;

/**
 * A CUDA driver call failed: names the C function, its key arguments, the {@code CUresult} code with its symbolic
 * name, and the driver's description where the driver is loaded. The one exception type of the CUDA binding.
 */
public final class CudaException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final String call;
    private final int result;

    /**
     * @param call the C function, e.g. {@code cuIpcOpenMemHandle_v2}
     * @param result the {@code CUresult} it returned
     * @param arguments the key arguments as {@code name=value, ...} (may be empty)
     */
    public CudaException(String call, int result, String arguments) {
        super(message(call, result, arguments));
        this.call = call;
        this.result = result;
    }

    static String message(String call, int result, String arguments) {
        String description = Cu.errorString(result);
        return call
                + "("
                + arguments
                + ") failed: "
                + CuResult.name(result)
                + " ("
                + result
                + ")"
                + (description == null ? "" : ": " + description);
    }

    /** The C function that failed. */
    public String call() {
        return call;
    }

    /** The {@code CUresult} code. */
    public int result() {
        return result;
    }

    /** The symbolic name of {@link #result()}. */
    public String resultName() {
        return CuResult.name(result);
    }
}
